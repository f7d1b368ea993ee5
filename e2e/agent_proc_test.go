package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// agentProc is a running `edgeseal agent`.
type agentProc struct {
	*proc
	a     *agentDir
	tcp   string        // the TLS listener's address
	ready time.Duration // process start to /readyz 200
}

// start starts the agent and, when wait, waits for /readyz over the socket.
func (a *agentDir) start(t *testing.T, wait bool) *agentProc {
	t.Helper()
	return a.startEnv(t, wait)
}

// startEnv is start with extra environment variables (NAME=VALUE).
func (a *agentDir) startEnv(t *testing.T, wait bool, env ...string) *agentProc {
	t.Helper()
	begin := time.Now()
	p := &agentProc{proc: startProc(t, "agent", env, "agent", "--config", filepath.Join(a.dir, "agent.yaml")), a: a}
	if !wait {
		return p
	}
	c := unixClient(a.socket)
	p.waitFor("ready", func() bool { return c.Ready(context.Background()) == nil })
	p.ready = time.Since(begin)
	p.tcp = p.logField("ready", "tcp")
	return p
}

// stop sends SIGTERM and wants exit status 0.
func (p *agentProc) stop() {
	p.t.Helper()
	p.terminate()
}
