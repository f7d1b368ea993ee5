package apibench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// conn is one load-generator client: a keep-alive HTTP/1.1 connection to
// the agent's unix socket that writes each request in one write and reads
// the answer with net/http's parser. It is what wrk is to a TCP server:
// the generator shares the two cores with the agent, and http.Client's
// transport (a reader and a writer goroutine per connection, a pool, a
// channel hand-off per request) cost about 115 us of CPU per export
// here, a third of the agent's own.
type conn struct {
	nc    net.Conn
	r     *bufio.Reader
	req   []byte
	token string // bearer token sent
}

func dial(socket string) (*conn, error) {
	nc, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), token: token}, nil
}

func (c *conn) Close() error { return c.nc.Close() }

// post sends one request and returns the answer's body; an answer other
// than 200 or 201 is an error naming it.
func (c *conn) post(path, ctype string, body []byte) ([]byte, error) {
	c.req = fmt.Appendf(c.req[:0], "POST %s HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		path, c.token, ctype, len(body))
	c.req = append(c.req, body...)
	if err := c.nc.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(c.req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %.500s", path, resp.Status, out)
	}
	if resp.Close {
		return nil, fmt.Errorf("POST %s: the agent closed the connection (Connection: close)", path)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(out)) {
		return nil, fmt.Errorf("POST %s: body of %d bytes, Content-Length %s", path, len(out), cl)
	}
	return out, nil
}
