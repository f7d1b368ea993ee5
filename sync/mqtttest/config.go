package mqtttest

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// StartConfig starts mosquitto from a shipped configuration file, adapted
// for the test and nothing else: the listener becomes a free port on
// 127.0.0.1, persistence goes to a temporary directory, the log to the
// broker's log file, and each option named in set gets that value instead
// of the shipped one (all its lines; an empty value removes the option;
// options the file lacks are appended). Typical set keys are cafile,
// certfile, keyfile and acl_file. When running as root the broker keeps
// root (it would drop to the user mosquitto). The URL's scheme is ssl://
// when the result has a certfile, else tcp://.
//
// Like Start, it skips the test when mosquitto is not installed, unless
// CI=true, and stops the broker at the end of the test.
func StartConfig(t testing.TB, confPath string, set map[string]string) *Broker {
	t.Helper()
	bin := Find()
	if bin == "" {
		testenv.Missing(t, "mqtttest: mosquitto not installed")
	}
	shipped, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	over := map[string]string{
		"listener":             strconv.Itoa(port) + " 127.0.0.1",
		"persistence_location": dir + "/",
		"log_dest":             "stderr",
	}
	for k, v := range set {
		over[k] = v
	}
	if os.Geteuid() == 0 {
		over["user"] = "root" // do not drop to "mosquitto", keep the temp dir writable
	}
	conf, tlsOn := renderConfig(string(shipped), over)
	b := &Broker{Port: port, Dir: dir, t: t, bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	scheme := "tcp"
	if tlsOn {
		scheme = "ssl"
	}
	b.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	t.Cleanup(b.kill)
	if err := b.start(); err != nil {
		t.Fatalf("mqtttest: %v\n%s\nconfig:\n%s", err, b.Log(), conf)
	}
	return b
}

// Config returns the configuration the broker runs with.
func (b *Broker) Config() string {
	data, _ := os.ReadFile(b.conf)
	return string(data)
}

// renderConfig applies over to a mosquitto.conf text (see StartConfig)
// and reports whether the result configures a certfile.
func renderConfig(shipped string, over map[string]string) (string, bool) {
	var out strings.Builder
	done := map[string]bool{}
	put := func(k, v string) {
		if v != "" {
			out.WriteString(k + " " + v + "\n")
		}
	}
	tlsOn := false
	sc := bufio.NewScanner(strings.NewReader(shipped))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			out.WriteString(line + "\n")
			continue
		}
		k := fields[0]
		if v, ok := over[k]; ok {
			if !done[k] {
				done[k] = true
				put(k, v)
				tlsOn = tlsOn || (k == "certfile" && v != "")
			}
			continue
		}
		tlsOn = tlsOn || k == "certfile"
		out.WriteString(line + "\n")
	}
	for _, k := range slices.Sorted(maps.Keys(over)) {
		if v := over[k]; !done[k] {
			put(k, v)
			tlsOn = tlsOn || (k == "certfile" && v != "")
		}
	}
	return out.String(), tlsOn
}
