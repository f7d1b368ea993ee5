package archive

import "github.com/edgeseal/edgeseal/archive/tlog"

// LogTiles returns the archive log as a read-only tlog.Source, on any
// engine: its last published signed checkpoint, the C2SP tlog-tiles hash tiles of its tree
// and its entry bundles (the canonical archivesig.ReceiptEntry and
// LogKeyEntry records). tlog.Handler serves it; only what that
// checkpoint commits to is served.
func (a *Archive) LogTiles() tlog.Source { return logSource{a.log} }
