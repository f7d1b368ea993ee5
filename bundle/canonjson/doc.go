// Package canonjson is RFC 8785 (JCS) canonical JSON as the edgeseal
// formats use it, restricted to integer numbers within ±(2^53-1): Append
// canonicalizes a JSON value, AppendString writes one string as JCS
// escapes it, and CheckMembers accepts only an object that is already
// canonical, naming the offset of the first byte that is not.
//
// It is the fast path of the custody record (bundle/custody), which owns
// the record's fields and their decoding; the other formats canonicalize
// with github.com/gowebpki/jcs, the reference Append is fuzzed against.
package canonjson
