// Package drainbench benchmarks the long-offline drain: exports
// journaled through the agent core while the broker is down, then the
// link returns and the sync publisher drains the outbox through a real
// Mosquitto to a real archive pipeline (sync subscriber, archive.Receive:
// verification, write-once object store,
// index, archive log, signed receipts), each receipt journaled before its
// outbox entry goes. Beside it, in the same run and on the same broker, a
// plain paho QoS 1 publish of the same messages (same sizes, same count)
// gives the baseline, and before the drain an essential floor (paho plus
// only the outbox read, reassembly, verification and write-once store)
// bounds what any drain could reach here. The archive and the baseline's
// subscriber run in child processes (this test binary again), so the
// agent's CPU per bundle is measured apart, beside paho's publishing
// client's. BenchmarkDrainEncrypted runs
// the drain in clear and then with every payload sealed to the archive's
// content key, in one process, for the cost of encryption on the drain.
// BenchmarkReplicas (replicas_test.go) drains several devices' backlogs
// into archive replicas on the replicated engines (a real MariaDB, a
// shared subscription group on Mosquitto), first one replica and then
// two, each in a child process, beside the essential floor of the same
// bundles (replicas_floor_test.go).
// It lives under sync/ because only sync/ imports
// paho. `make bench` runs it through bench/report.
package drainbench
