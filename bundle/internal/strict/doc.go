// Package strict holds the small decoding helpers the bundle format
// packages share: JSON decoding that refuses unknown fields and trailing
// data, the first differing byte of two encodings, lowercase hex, and the
// largest integer a format writes (2^53-1).
package strict
