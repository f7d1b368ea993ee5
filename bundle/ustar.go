package bundle

import "strconv"

// tarBlock is the tar block size.
const tarBlock = 512

// fastUSTAR reports whether ustarHeader formats the header of a file
// named name of size bytes: a name of 1 to 100 ASCII bytes without NUL
// and not ending in '/' (no prefix field needed; archive/tar refuses a
// regular file named like a directory) and a size that fits 11 octal
// digits. Anything else goes through archive/tar.
func fastUSTAR(name string, size int64) bool {
	if len(name) == 0 || len(name) > 100 || name[len(name)-1] == '/' || size < 0 || size >= 1<<33 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 || name[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ustarHeader formats into h the header archive/tar writes for a regular
// file of Write (mode 0644, uid and gid 0, mtime 0, no owner names, USTAR
// format); fastUSTAR(name, size) must hold. TestUSTARHeaderMatchesTar and
// FuzzUSTARHeader hold it to archive/tar byte for byte.
func ustarHeader(h *[tarBlock]byte, name string, size int64) {
	*h = ustarTemplate
	copy(h[0:100], name)
	octal(h[124:136], uint64(size))
	// The checksum: the template's fixed fields plus name and size.
	sum := ustarFixedSum
	for i := 0; i < len(name); i++ {
		sum += int(name[i])
	}
	for _, c := range h[124:136] {
		sum += int(c)
	}
	octal(h[148:155], uint64(sum))
	h[155] = ' '
}

// ustarTemplate is a header of Write without name, size and checksum;
// ustarFixedSum the checksum of its other fields, the checksum field
// counted as spaces.
var ustarTemplate, ustarFixedSum = func() ([tarBlock]byte, int) {
	var h [tarBlock]byte
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	octal(h[136:148], 0)
	h[156] = '0'
	copy(h[257:265], "ustar\x0000")
	copy(h[329:337], "0000000\x00")
	copy(h[337:345], "0000000\x00")
	sum := 8 * int(' ')
	for i, c := range h {
		if i >= 148 && i < 156 || i >= 124 && i < 136 {
			continue
		}
		sum += int(c)
	}
	return h, sum
}()

// octal writes n as zero-padded octal digits filling f but its last byte,
// which is NUL.
func octal(f []byte, n uint64) {
	var buf [24]byte
	d := strconv.AppendUint(buf[:0], n, 8)
	w := len(f) - 1
	for i := range w - len(d) {
		f[i] = '0'
	}
	copy(f[w-len(d):w], d)
	f[w] = 0
}
