package store

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4): reclaim the range's pages.
const madvPageout = 21

// trimResident asks the kernel to take back from this process the pages
// of every memory mapping of a file under dir (Badger's tables, value
// logs and memtable logs; Badger maps them all and never lets go of a
// page it has touched, so without this the process's resident set grows
// with every byte the journal writes or compacts).
//
// MADV_PAGEOUT never loses data: a dirty page of a shared file mapping is
// only unmapped and stays in the page cache until written back, a clean
// one is dropped and read again on the next touch. It is harmless on any
// other mapping, which matters because a range read from /proc/self/maps
// may have been unmapped, and its address reused, by the time madvise
// runs (MADV_DONTNEED would zero an anonymous mapping there). Errors
// (ENOMEM for a range gone since, EINVAL on kernels before 5.4) are
// ignored: trimming is an optimisation. It returns the bytes advised.
func trimResident(dir string) int64 {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	prefix := dir + "/"
	var advised int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		// start-end perms offset dev inode   path
		i := bytes.IndexByte(line, '/')
		if i < 0 || !strings.HasPrefix(string(line[i:]), prefix) {
			continue
		}
		dash := bytes.IndexByte(line, '-')
		sp := bytes.IndexByte(line, ' ')
		if dash < 0 || sp < dash {
			continue
		}
		start, err1 := strconv.ParseUint(string(line[:dash]), 16, 64)
		end, err2 := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout)
		if errno == 0 {
			advised += int64(end - start)
		}
	}
	return advised
}

// residentFileBytes is the resident size of this process's mappings of
// files under dir, from /proc/self/smaps (tests and benchmarks).
func residentFileBytes(dir string) int64 {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return -1
	}
	prefix := dir + "/"
	var in bool
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], prefix)
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}
