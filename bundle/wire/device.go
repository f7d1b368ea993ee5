package wire

import "strings"

// CheckDevice validates a device name "<site>/<name>".
func CheckDevice(d string) error {
	site, name, ok := strings.Cut(d, "/")
	if !ok || !ValidName(site) || !ValidName(name) {
		return FormatErr("device", "%.80q is not <site>/<name> of [A-Za-z0-9._-]{1,64}", d)
	}
	return nil
}

// ValidName reports whether s is one part of a device name (a site or a
// name): 1 to 64 bytes of [A-Za-z0-9._-], neither "." nor "..".
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
