package store

import "path/filepath"

// startTrimmer starts the goroutine that keeps the journal's mapped
// files from piling up in the resident set: Badger writes its tables,
// value log and memtable logs through memory mappings and keeps every
// page it touched mapped, so a long-running agent's RSS would otherwise
// grow with the journal. Each pass is one read of /proc/self/maps and a
// madvise per mapping, off the commit path.
func (j *Journal) startTrimmer() {
	j.trimWake = make(chan struct{}, 1)
	j.trimDone = make(chan struct{})
	dir, err := filepath.Abs(j.opts.Dir)
	if err == nil {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
	}
	j.realDir = filepath.Clean(dir)
	go func() {
		defer close(j.trimDone)
		for {
			select {
			case <-j.quit:
				return
			case <-j.trimWake:
			}
			trimResident(j.realDir)
			j.trimmed.Add(1)
		}
	}()
	if j.opts.ResidentBytes > 0 {
		j.wakeTrimmer() // Open's replay and index reads touched pages too
	}
}

// noteWritten is called by the sequencer after each commit.
func (j *Journal) noteWritten(n int64) {
	if j.opts.ResidentBytes <= 0 {
		return
	}
	j.written += n
	if j.written >= j.opts.ResidentBytes {
		j.written = 0
		j.wakeTrimmer()
	}
}

func (j *Journal) wakeTrimmer() {
	select {
	case j.trimWake <- struct{}{}:
	default:
	}
}
