package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/internal/yamlconf"
	"gopkg.in/yaml.v3"
)

// Byte size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// ByteSize is a number of bytes. In YAML it is an integer or a string with
// a unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000),
// with or without a space ("32 MiB", "512KiB"); units are case-insensitive.
type ByteSize int64

// String formats the size with the largest binary unit that divides it.
func (s ByteSize) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + " GiB"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + " MiB"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + " KiB"
	}
	return strconv.FormatInt(int64(s), 10) + " B"
}

// ParseByteSize parses a size such as "32 MiB", "1GB" or "4096".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size like \"32 MiB\"", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	var mult int64
	switch strings.ToLower(strings.TrimSpace(s[i:])) {
	case "", "b":
		mult = 1
	case "kib":
		mult = 1 << 10
	case "mib":
		mult = 1 << 20
	case "gib":
		mult = 1 << 30
	case "kb":
		mult = 1e3
	case "mb":
		mult = 1e6
	case "gb":
		mult = 1e9
	default:
		return 0, fmt.Errorf("%q has an unknown unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return ByteSize(n * mult), nil
}

// sizeScalar decodes a ByteSize from YAML: an integer or a string with a
// unit.
var sizeScalar = yamlconf.Scalar{
	Want: `a size such as "32 MiB"`,
	Decode: func(n *yaml.Node, v reflect.Value) error {
		s, err := ParseByteSize(n.Value)
		if err != nil {
			return err
		}
		v.SetInt(int64(s))
		return nil
	},
}
