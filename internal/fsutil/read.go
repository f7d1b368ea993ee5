package fsutil

import (
	"fmt"
	"io"
	"os"
)

// ReadLimited reads the file at path and fails when it is larger than
// limit bytes (it reads at most limit+1).
func ReadLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
