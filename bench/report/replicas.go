package main

import (
	"fmt"
	"io"
)

// Archive replicas (sync/drainbench BenchmarkReplicas): one replica and
// two on the replicated engines in one run, beside the essential floor
// of the same bundles.

var replicaBenches = []bench{
	{"./sync/drainbench", "^BenchmarkReplicas$", "1x", "archive replicas on MariaDB (log and chain state) and a shared Mosquitto subscription: 8 devices' offline backlogs drained by one replica, then new backlogs by two; the essential floor of the same bundles"},
}

// replicaUnits are BenchmarkReplicas' figures in the table, in order.
var replicaUnits = []string{
	"one-bundles/s", "two-bundles/s", "two-%-of-one", "floor-bundles/s", "one-%-of-floor", "one-MB/s", "two-MB/s",
	"devices", "bundles", "bundle-KB", "one-drain-s", "one-drained-%", "two-drain-s", "two-drained-%",
	"one-held", "two-held", "one-duplicates", "two-duplicates", "one-resent", "two-resent", "two-min-share-%",
	"one-admit-ms/bundle", "two-admit-ms/bundle", "one-receive-ms/bundle", "two-receive-ms/bundle",
	"one-archive-cpu-ms/bundle", "two-archive-cpu-ms/bundle", "one-agent-cpu-ms/bundle", "two-agent-cpu-ms/bundle",
	"one-db-cpu-ms/bundle", "two-db-cpu-ms/bundle", "one-broker-cpu-ms/bundle", "two-broker-cpu-ms/bundle",
	"one-cores", "two-cores",
}

func init() { benches = append(benches, replicaBenches...) }

// writeReplicaTargets adds the replicas' targets: two replicas' bundles/s
// at least 0.9 of one replica's, and one replica's at least 90% of its
// essential floor, both from the one run of BenchmarkReplicas.
func writeReplicaTargets(w io.Writer, r *result) {
	const twoName = "two archive replicas >= 0.9 of one replica's bundles/s (2 cores shared by MariaDB, Mosquitto, the replicas and the devices)"
	const floorName = "one archive replica admits at >= 90% of its essential floor (read, verify, write-once store with fsync)"
	if r == nil || r.err != nil || r.metrics["one-bundles/s"] == 0 {
		fmt.Fprintf(w, "| %s | not measured | no |\n", twoName)
		fmt.Fprintf(w, "| %s | not measured | no |\n", floorName)
		return
	}
	m := r.metrics
	stopped := func(pre string) string {
		if d := m[pre+"drained-%"]; d < 100 {
			return fmt.Sprintf(", stopped after %.0f s with %.0f%% delivered", m[pre+"drain-s"], d)
		}
		return fmt.Sprintf(", drained in %.1f s", m[pre+"drain-s"])
	}
	q := m["two-bundles/s"] / m["one-bundles/s"]
	fmt.Fprintf(w, "| %s | %.0f%% (%.1f vs %.1f bundles/s%s; %.0f bundles answered held, %.0f duplicates, %.0f resent; the smaller replica took %.0f%%; admit %.0f vs %.0f ms a bundle, receive %.0f vs %.0f ms; %.2f vs %.2f cores busy) | %s |\n",
		twoName, 100*q, m["two-bundles/s"], m["one-bundles/s"], stopped("two-"), m["two-held"], m["two-duplicates"], m["two-resent"], m["two-min-share-%"],
		m["two-admit-ms/bundle"], m["one-admit-ms/bundle"], m["two-receive-ms/bundle"], m["one-receive-ms/bundle"], m["two-cores"], m["one-cores"], yes(q >= 0.9))
	f := m["one-bundles/s"] / m["floor-bundles/s"]
	fmt.Fprintf(w, "| %s | %.0f%% (%.1f vs %.1f bundles/s of %.0f KB%s; a bundle %.0f ms from admission to answer; %.2f cores busy: CPU a bundle %.1f ms in the replica, %.1f in MariaDB, %.1f in the devices, %.1f in Mosquitto; the floor's process %.1f) | %s |\n",
		floorName, 100*f, m["one-bundles/s"], m["floor-bundles/s"], m["bundle-KB"], stopped("one-"), m["one-receive-ms/bundle"], m["one-cores"],
		m["one-archive-cpu-ms/bundle"], m["one-db-cpu-ms/bundle"], m["one-agent-cpu-ms/bundle"], m["one-broker-cpu-ms/bundle"], m["floor-cpu-ms/bundle"], yes(f >= 0.9))
}

// replicaNote explains the replicas' row.
const replicaNote = `The replicas row (sync/drainbench BenchmarkReplicas) runs archive replicas as the daemon runs
them with archive_log and archive_state on engine mysql and mqtt.group set: a real MariaDB
(mariadbd on a temporary directory: the Tessera log and the chain state, shared), a real
Mosquitto (the replicas in the shared subscription $share/archive/...), one objects directory
shared by the replicas (write-once files with fsync; not S3), each replica its own data directory
(Badger index, logkeys, devices.json) and a child process of its own. 8 devices (agent cores, each
its own swtpm, journal and sync publisher with the agent's defaults: window 8, resend after 2 min)
journal an offline backlog of 15 bundles of 100 exports each (about 200 KB a bundle: one MQTT
message, since a shared subscription deals each message to one replica), then drain it: timed
until every receipt is journaled and every outbox empty, first with one replica, then with a new
backlog of the same size and two replicas. A drain is stopped after 75 s: its rate is then the
bundles delivered by then over that time (drained-% < 100). held is bundles answered held
(verifications_total{result="held"} of the daemon), duplicates the repeats answered with the stored
receipt, resent the publishers' resends; admit-ms/bundle the time on the subscriber's admitting
goroutine, receive-ms/bundle from admission to answer. The CPU figures are per bundle accepted:
the replicas' processes, MariaDB's, the devices' (the benchmark process) and Mosquitto's; cores is
all of them over the drain. The floor runs before the one-replica drain while the outboxes are
full, three times (median kept): the same bundles read from the outboxes and published with paho at
QoS 1 on each device's topic, reassembled and checked, verified against each device's trust in
chain order and stored write-once with fsync, devices in parallel, and nothing else (no log,
chain state, index, receipts or answers). All of it shares the machine's cores.
`
