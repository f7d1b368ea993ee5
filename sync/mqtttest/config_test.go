package mqtttest

import "testing"

func TestRenderConfig(t *testing.T) {
	shipped := "# comment\nlistener 8883\ncafile /etc/ca.pem\nacl_file /etc/x.acl\nlog_type error\nlog_type warning\npersistence true\n"
	got, tlsOn := renderConfig(shipped, map[string]string{
		"listener": "1234 127.0.0.1", "acl_file": "", "log_type": "all", "user": "root",
	})
	want := "# comment\nlistener 1234 127.0.0.1\ncafile /etc/ca.pem\nlog_type all\npersistence true\nuser root\n"
	if got != want || tlsOn {
		t.Fatalf("got %q (tls %v), want %q", got, tlsOn, want)
	}
	if _, tlsOn := renderConfig("certfile /a\n", nil); !tlsOn {
		t.Fatal("certfile not seen")
	}
	if _, tlsOn := renderConfig("certfile /a\n", map[string]string{"certfile": ""}); tlsOn {
		t.Fatal("removed certfile still seen")
	}
}
