// Package e2e holds edgeseal's system tests. They build ./cmd/edgeseal once
// (with cgo, for the in-process TPM simulator) and drive the binary as an
// operator would: `edgeseal agent` and `edgeseal archive` as processes
// talking over their unix socket, HTTPS and MQTT (the archive's embedded
// broker, or Mosquitto), and the one-shot commands (tpm enroll, export,
// verify, bundles, archive devices/import/key/check, doctor, demo, service
// notifications) by their output and exit codes.
//
// What they cover: an export's way from the local API to a sealed bundle
// and an archive receipt; enrollment by file and over MQTT, with credential
// activation; key rotation and revocation; recovery after a TPM clear, a
// board swap or a PCR change (swtpm); the air gap (bundles on removable
// media); crashes of the agent and outages of the broker and the archive;
// failed fsyncs, msyncs, writes, renames, links and opens injected into the
// running daemons with strace (faults_*_test.go, docs/durability.md);
// metrics; the README's verification recipe; that tokens never reach
// argv; the agent's answers while it starts and stops; and the Node-RED
// node of integrations/node-red in a real Node-RED (installed from npm
// into ~/.cache/edgeseal) against a real agent and archive.
//
// Run them from the repository root:
//
//	go test -count=1 -timeout 30m ./e2e/
//	go test -count=1 -run 'TestEnrollOverMQTT|TestBundlesAirGap' ./e2e/
//
// Some need tools from the machine (mosquitto, swtpm, tpm2-tools,
// versitygw, jq, openssl, strace, node and npm; scripts/deps.sh test
// installs them): a
// test whose tool is missing is skipped, and fails under CI=true. The
// package reads only public packages of the module to build inputs
// (bundles, keys, configs) and to read results (journals, archive data),
// never the command's own code. `make soak` runs TestAgentCrash,
// TestSyncOutage and TestFaultsRandom with EDGESEAL_SOAK times their
// rounds.
package e2e
