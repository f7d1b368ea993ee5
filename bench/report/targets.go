package main

import (
	"fmt"
	"io"
	"strings"
)

// rate is r's figure in unit, and whether r ran and has it.
func rate(r *result, unit string) (float64, bool) {
	if r == nil || r.err != nil {
		return 0, false
	}
	v, ok := r.metrics[unit]
	return v, ok && v > 0
}

// target writes one row of the targets table: want (a ratio, 0.6 for
// 60%) of a over b, or, with times set, a at least times b.
func target(w io.Writer, name string, a *result, au string, b *result, bu string, want float64, times bool, extra string) {
	av, aok := rate(a, au)
	bv, bok := rate(b, bu)
	if !aok || !bok {
		fmt.Fprintf(w, "| %s | not measured | no |\n", name)
		return
	}
	q := av / bv
	got := fmt.Sprintf("%.0f%%", q*100)
	if times {
		got = fmt.Sprintf("%.2fx", q)
	}
	if extra != "" {
		extra = "; " + extra
	}
	fmt.Fprintf(w, "| %s | %s (%.0f %s vs %.0f %s%s) | %s |\n", name, got, av, au, bv, bu, extra, yes(q >= want))
}

// writeJournalTargets adds the journal's targets, each beside Badger's
// synced WriteBatch of the same entries in the same run, with the
// one-transaction-per-entry baseline as a secondary reference.
func writeJournalTargets(w io.Writer, rs []result) {
	app := find(rs, "^BenchmarkAppend$/^writers=64$")
	enc := find(rs, "^BenchmarkAppend$/^encrypted$/^writers=64$")
	txn := find(rs, "^BenchmarkBadgerBaseline$/^writers=64$")
	ref := ""
	if v, ok := rate(txn, "appends/s"); ok {
		ref = fmt.Sprintf("one Badger transaction an entry, 64 writers: %.0f appends/s", v)
	}
	if v, ok := rate(find(rs, "^BenchmarkBadgerWriteBatch$/^writers=1$/^entries=64$"), "records/s"); ok {
		if ref != "" {
			ref += "; "
		}
		ref += fmt.Sprintf("WriteBatch of 64, 1 writer (the same entries in flight): %.0f records/s", v)
	}
	target(w, "journal appends at 64 writers >= 60% of Badger's synced WriteBatch-100 of the same entries",
		app, "appends/s", find(rs, "^BenchmarkBadgerWriteBatch$/^entries=100$"), "records/s", 0.6, false, ref)
	target(w, "the same, encrypted at rest (journal as the agent runs it; Badger's values sealed alike)",
		enc, "appends/s", find(rs, "^BenchmarkBadgerWriteBatch$/^encrypted$/^entries=100$"), "records/s", 0.6, false, "")
	target(w, "journal batch appends >= 50% of Badger's synced WriteBatch-1000 of the same bytes",
		find(rs, "^BenchmarkAppendBatch$"), "records/s", find(rs, "^BenchmarkBadgerWriteBatch$/^encrypted$/^entries=1000$"), "records/s", 0.5, false, "")
}

// writeAPITargets adds the API targets: batch against single exports and
// against the journal's batch rate (the best batch size that ran),
// single exports against the HTTP floor, and the agent's peak RSS (the
// highest of all API runs).
func writeAPITargets(w io.Writer, rs []result, app *result) {
	single := find(rs, "^BenchmarkAPIExport$/^clients=64$")
	var best *result
	for i := range rs {
		r := &rs[i]
		if r.err == nil && strings.HasPrefix(r.name, "^BenchmarkAPIBatch$") && (best == nil || r.metrics["records/s"] > best.metrics["records/s"]) {
			best = r
		}
	}
	batchLabel := ""
	if best != nil {
		batchLabel = best.label
	}
	target(w, "API batch >= 2.5x API single exports (64 clients) in records/s",
		best, "records/s", single, "exports/s", 2.5, true, batchLabel)
	target(w, "API batch >= 70% of the journal's batch rate",
		best, "records/s", find(rs, "^BenchmarkAppendBatch$"), "records/s", 0.7, false, batchLabel)
	extra := ""
	if v, ok := rate(app, "appends/s"); ok {
		extra = fmt.Sprintf("raw journal append (%s): %.0f appends/s", app.label, v)
	}
	if f := find(rs, "^BenchmarkHTTPFloor$/^journal$/^clients=64$"); f != nil && f.err == nil {
		extra += fmt.Sprintf("; durable floor (HTTP plus the journal append alone): %.0f/s", f.metrics["exports/s"])
	}
	target(w, "API single exports at 64 clients >= 50% of the HTTP floor",
		single, "exports/s", find(rs, "^BenchmarkHTTPFloor$/^clients=64$"), "exports/s", 0.5, false, extra)
	var rss float64
	n := 0
	for _, r := range rs {
		if v, ok := r.metrics["agent-rss-MiB"]; ok && r.err == nil && strings.HasPrefix(r.name, "^BenchmarkAPI") {
			rss, n = max(rss, v), n+1
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "| agent peak RSS <= 96 MiB in every API run (batches of 1000 lines included) | %.1f MiB (highest of %d API runs) | %s |\n", rss, n, yes(rss <= 96))
	} else {
		fmt.Fprintf(w, "| agent peak RSS <= 96 MiB in every API run | not measured | no |\n")
	}
}

// writeEncryptionTargets adds the cost of end-to-end payload encryption:
// the agent's CPU time per export with every payload sealed to a content
// key beside the same load without it, in the same run, at each client
// count both ran. It holds when the increase is at most 15% of the
// unencrypted agent's CPU per export (the share of encryption in the
// encrypted agent's CPU is shown beside it).
func writeEncryptionTargets(w io.Writer, rs []result) {
	for _, clients := range []int{1, 8, 64} {
		plain := find(rs, fmt.Sprintf("^BenchmarkAPIExport$/^clients=%d$", clients))
		enc := find(rs, fmt.Sprintf("^BenchmarkAPIExportEncrypted$/^clients=%d$", clients))
		name := fmt.Sprintf("payload encryption costs <= 15%% of the agent's CPU per export (1 KiB, %d clients)", clients)
		pc, pok := rate(plain, "agent-cpu-us/item")
		ec, eok := rate(enc, "agent-cpu-us/item")
		if !pok || !eok {
			fmt.Fprintf(w, "| %s | not measured | no |\n", name)
			continue
		}
		inc := (ec - pc) / pc
		fmt.Fprintf(w, "| %s | %+.0f%% (%.0f vs %.0f agent-cpu-us/export; encryption %.0f%% of the encrypted agent's CPU; %.0f vs %.0f exports/s) | %s |\n",
			name, inc*100, ec, pc, 100*(ec-pc)/ec, enc.metrics["exports/s"], plain.metrics["exports/s"], yes(inc <= 0.15))
	}
	writeDrainEncryption(w, find(rs, "^BenchmarkDrainEncrypted$"))
}

// writeDrainEncryption adds the long-offline drain with every payload
// encrypted beside the same drain in clear, from the one run of
// BenchmarkDrainEncrypted: reported, no threshold (the CPU target per
// export is the API rows').
func writeDrainEncryption(w io.Writer, d *result) {
	const name = "long-offline drain with payload encryption, beside the same drain in clear (one run; reported)"
	if d == nil || d.err != nil || d.metrics["plain-exports/s"] == 0 {
		fmt.Fprintf(w, "| %s | not measured | no |\n", name)
		return
	}
	m := d.metrics
	fmt.Fprintf(w, "| %s | %.1f vs %.1f MB/s (%.0f vs %.0f exports/s, %.0f vs %.0f MB of bundles; the drain took %+.0f%%); CPU %.1f vs %.1f ms a bundle over the drain (broker %.1f vs %.1f), journaling offline %.0f vs %.0f us an export | reported |\n",
		name, m["enc-MB/s"], m["plain-MB/s"], m["enc-exports/s"], m["plain-exports/s"], m["enc-backlog-MB"], m["plain-backlog-MB"], m["enc-%-drain-time"],
		m["enc-cpu-ms/bundle"], m["plain-cpu-ms/bundle"], m["enc-broker-cpu-ms/bundle"], m["plain-broker-cpu-ms/bundle"], m["enc-journal-cpu-us/export"], m["plain-journal-cpu-us/export"])
}

// writeDrainTargets adds the drain's targets as two ratios that hold
// when agent, broker and archive share the cores: the agent's CPU per
// bundle sent against paho's client CPU for the same frames, and the
// archive's admit rate against its essential floor (the same frames with
// only the work delivery needs). The drain against a plain paho publish
// stays as a reference.
func writeDrainTargets(w io.Writer, d *result) {
	if d == nil || d.err != nil {
		fmt.Fprintf(w, "| the agent's CPU per bundle sent <= 1.5x paho's client CPU for the same frames | not measured | no |\n")
		fmt.Fprintf(w, "| the archive admits at >= 90%% of its essential floor | not measured | no |\n")
		return
	}
	m := d.metrics
	if a, ok := m["agent-cpu-ms/bundle"]; ok && m["paho-pub-cpu-ms/bundle"] > 0 {
		// Each side in its own process: the agent (core, outbox,
		// publisher) against paho's publishing client.
		q := a / m["paho-pub-cpu-ms/bundle"]
		// Paho's client plus the outbox read is the least the agent can
		// do for a bundle: the ratio no agent gets under here.
		least := (m["paho-pub-cpu-ms/bundle"] + m["agent-read-cpu-ms/bundle"]) / m["paho-pub-cpu-ms/bundle"]
		fmt.Fprintf(w, "| the agent's CPU per bundle sent <= 1.5x paho's client CPU for the same frames | %.2fx (%.2f vs %.2f ms a bundle, %.0f%% of it system time; reading a bundle from the outbox alone %.2f, so paho's client plus that read is %.2fx; the agent idle over a span as long as the drain %.2f; window %.0f, %.1f receipts a journal commit; the archive's process %.1f) | %s |\n",
			q, a, m["paho-pub-cpu-ms/bundle"], m["agent-sys-%"], m["agent-read-cpu-ms/bundle"], least, m["agent-idle-cpu-ms/bundle"], m["window"], m["receipts/commit"], m["archive-cpu-ms/bundle"], yes(q <= 1.5))
	} else {
		// The drain runs agent, archive and both MQTT clients in one
		// process: its CPU is theirs together.
		fmt.Fprintf(w, "| the agent's CPU per bundle sent <= 1.5x paho's client CPU for the same frames | not measured apart (agent, archive and clients together: %.1f ms a bundle; paho's clients %.1f) | no |\n",
			m["cpu-ms/bundle"], m["paho-cpu-ms/bundle"])
	}
	cpuNote := ""
	if dc, fc := m["cpu-ms/bundle"]+m["broker-cpu-ms/bundle"], m["floor-cpu-ms/bundle"]+m["floor-broker-cpu-ms/bundle"]; dc > 0 && fc > 0 {
		// On a shared machine the wall-clock rates of runs minutes apart
		// see different loads; CPU per bundle is steadier.
		cpuNote = fmt.Sprintf("CPU per bundle, all processes and the broker: drain %.1f ms (archive %.1f, agent %.1f) vs floor %.1f ms, so %.0f%% of the floor's rate when CPU-bound on the same cores; the archive's export index after the drain %.1f ms a bundle more",
			dc, m["archive-cpu-ms/bundle"], m["agent-cpu-ms/bundle"], fc, 100*fc/dc, m["archive-index-after-cpu-ms/bundle"])
	}
	target(w, "the archive admits at >= 90% of its essential floor", d, "MB/s", d, "floor-MB/s", 0.9, false, cpuNote)
	q := m["%-of-paho"]
	fmt.Fprintf(w, "| (reference) long-offline drain against a plain paho QoS 1 publish of the same messages to the same broker | %.0f%% (%.1f vs %.1f MB/s; %.0f MB of bundles in %.1f s%s) | - |\n",
		q, m["MB/s"], m["paho-MB/s"], m["backlog-MB"], m["drain-s"], drainBudget(d))
}
