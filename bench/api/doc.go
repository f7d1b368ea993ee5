// Package apibench benchmarks the agent's local API end to end: it builds
// the real edgeseal binary, starts `edgeseal agent` on a temporary config
// (in-process TPM simulator, unix socket), and drives POST /v1/exports and
// POST /v1/exports:batch with 1 KiB JSON exports from concurrent clients.
// Each benchmark reports exports/s or records/s, p50 and p99 latency in
// ms, the agent process's peak RSS (VmHWM) in MiB, and the CPU time per
// item of the agent and of the load generator (lean keep-alive HTTP/1.1
// connections, conn_test.go). BenchmarkHTTPFloor runs the same load
// against floors served by this test binary in its own process
// (floor_test.go): net/http doing nothing, and net/http journaling each
// body before answering. `make bench` runs them through bench/report,
// each in its own process with its own agent.
package apibench
