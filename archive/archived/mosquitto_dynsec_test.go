package archived_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// The shipped dynamic security configuration for archive replicas.
var shippedDynsec = filepath.Join("..", "..", "packaging", "mosquitto", "edgeseal-dynsec.json")

// dynsecDeviceCommands are the `mosquitto_ctrl ... dynsec` commands that
// let device <site>/<device> in (docs/operators.md, "Archive replicas"):
// a role of its own, since the dynamic security plugin of Mosquitto 2.0
// substitutes no %u in its ACLs.
func dynsecDeviceCommands(site, device string) [][]string {
	name := site + "/" + device
	acl := func(typ, topic string) []string { return []string{"addRoleACL", name, typ, topic, "allow"} }
	return [][]string{
		{"createRole", name},
		acl("publishClientSend", "edgeseal/v1/"+name+"/bundles"),
		acl("publishClientSend", "edgeseal/v1/"+name+"/enroll"),
		acl("publishClientSend", "edgeseal/v1/alerts/"+name),
		acl("subscribeLiteral", "edgeseal/v1/"+name+"/receipts"),
		acl("subscribeLiteral", "edgeseal/v1/"+name+"/enroll/reply"),
		acl("publishClientReceive", "edgeseal/v1/"+name+"/receipts"),
		acl("publishClientReceive", "edgeseal/v1/"+name+"/enroll/reply"),
		{"createClient", name},
		{"addClientRole", name, name},
	}
}

// shippedPluginLines are the commented plugin lines of the shipped
// mosquitto config ("#plugin ..." and "#plugin_opt_config_file ..."),
// which replace acl_file for archive replicas.
func shippedPluginLines(t *testing.T) (plugin, configFile string) {
	t.Helper()
	f, err := os.Open(shippedConf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#plugin "); ok {
			plugin = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "#plugin_opt_config_file "); ok {
			configFile = strings.TrimSpace(v)
		}
	}
	if plugin == "" || configFile == "" {
		t.Fatalf("%s has no commented plugin and plugin_opt_config_file lines", shippedConf)
	}
	return plugin, configFile
}

// TestMosquittoDynsecShare: the packaged Mosquitto config with its
// commented dynamic security lines in place of acl_file, the packaged
// edgeseal-dynsec.json, and devices A and B let in with the documented
// mosquitto_ctrl commands (run with the certificate of the packaged
// admin account): the archive subscribes through the shared group
// "archive" (mqtt.group, as replicas do); device B's certificate, which
// joins that group, is refused the subscription and takes nothing: the
// archive gets each of 20 bundles of device A the first time and every
// enrollment request, and device A gets its receipts and answers.
func TestMosquittoDynsecShare(t *testing.T) {
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	ctrl, err := exec.LookPath("mosquitto_ctrl")
	if err != nil {
		testenv.Missing(t, "mosquitto_ctrl not installed (Debian: mosquitto)")
	}
	plugin, _ := shippedPluginLines(t)
	if _, err := os.Stat(plugin); err != nil {
		testenv.Missing(t, "the dynamic security plugin of the shipped config: %v", err)
	}
	raw, err := os.ReadFile(shippedDynsec)
	if err != nil {
		t.Fatal(err)
	}
	dynsec := filepath.Join(t.TempDir(), "edgeseal-dynsec.json") // the broker writes it back
	if err := os.WriteFile(dynsec, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	pki := mqtttest.NewPKI(t)
	archiveCert := pki.Issue(t, "edgeseal-archive")
	admin := pki.Issue(t, "edgeseal-mqtt-admin")
	devA := pki.Issue(t, "site1/devA")
	devB := pki.Issue(t, "site1/devB")
	const n = 20
	chain, err := bundletest.NewChain(t.Context(), nil, n, bundletest.Options{Site: "site1", Device: "devA"})
	if err != nil {
		t.Fatal(err)
	}
	brk := mqtttest.StartConfig(t, shippedConf, map[string]string{
		"acl_file": "", "plugin": plugin, "plugin_opt_config_file": dynsec,
		"cafile": pki.CAFile, "certfile": pki.ServerCert, "keyfile": pki.ServerKey,
	})
	if strings.Contains("\n"+brk.Config(), "\nacl_file") {
		t.Fatal("acl_file left beside the plugin: Mosquitto 2.0 would grant every subscription")
	}
	for _, dev := range []string{"devA", "devB"} {
		for _, c := range dynsecDeviceCommands("site1", dev) {
			args := append([]string{"--cafile", pki.CAFile, "--cert", admin.CertFile, "--key", admin.KeyFile,
				"-h", "127.0.0.1", "-p", strconv.Itoa(brk.Port), "dynsec"}, c...)
			cmd := exec.CommandContext(t.Context(), ctrl, args...)
			cmd.Stdin = strings.NewReader("\n") // createClient: no password, the certificate authenticates
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "Error") {
				t.Fatalf("mosquitto_ctrl %v: %v\n%s\nbroker:\n%s", c, err, out, brk.Log())
			}
		}
	}
	shareJamming(t, brk, pki, archiveCert, devA, devB, chain, "archive")
}
