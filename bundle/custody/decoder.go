package custody

// RecordDecoder parses records as ParseRecord does, reusing its scratch
// space from one record to the next; the verifier keeps one per worker.
// A RecordDecoder is not safe for concurrent use.
type RecordDecoder struct{ d recDecoder }

// Parse decodes the canonical record b into r; s holds the same bytes as
// b (the caller may share b's memory), so that strings are not copied.
func (d *RecordDecoder) Parse(b []byte, s string, r *Record) error { return d.d.parse(b, s, r) }

// TimeText is r.Time as the record wrote it (set by ParseRecord).
func (r *Record) TimeText() string { return r.timeText }

// ParsedExport returns the export body ParseRecord decoded, if r is an
// export record whose body is unchanged since.
func (r *Record) ParsedExport() (ExportBody, bool) { return r.parsedExport() }

// PayloadDigest is the export payload digest ParseRecord decoded (zero for
// other records).
func (r *Record) PayloadDigest() [32]byte { return r.payload }
