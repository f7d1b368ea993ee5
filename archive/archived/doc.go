// Package archived runs the archive daemon and opens what the archive's
// operator commands work on. Run opens the archive's signing key (a key
// file, created on first start, or a PKCS#11 token key), the write-once
// object store (filesystem or S3), the archive (package archive), the
// embedded MQTT broker unless an external one is configured, and the
// sync subscriber, serves /metrics and talks to systemd, until its
// context is cancelled.
//
// It is a package of its own because it wires the archive together with
// the packages built on it (archive/s3store, archive/broker); the
// edgeseal command only parses flags and calls it, and tests call Run
// without a process.
package archived
