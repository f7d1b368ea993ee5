package archive

// SetIndexHook sets the hook run before each export index batch (the
// watermark it would write: log index, records done); an error stops
// the indexer there, as a crash would. nil clears it.
func SetIndexHook(h func(logIndex, off uint64) error) {
	if h == nil {
		indexHook.Store(nil)
		return
	}
	indexHook.Store(&h)
}
