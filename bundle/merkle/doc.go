// Package merkle is the transparency-log side of the formats: RFC 6962
// leaf and node hashes (LeafHash is SHA-256(0x00 || record)), inclusion
// and consistency proofs (VerifyInclusion, VerifyConsistency), compact
// ranges (CompactRange, RangeRoot, FoldRange), and the C2SP
// tlog-checkpoint body that commits to a tree (Checkpoint, with origin
// "edgeseal/<site>/<device>" for a device, Origin).
//
// It hashes records as bytes; it does not parse them (bundle/custody) and
// does not keep a log (the agent's journal, the archive's index).
package merkle
