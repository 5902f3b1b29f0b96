package config

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"
)

// A ByteSize is a size in bytes, written as a plain number or with a unit,
// in either case: "512KiB", "64MiB", "10GiB" (powers of 1024) or "1GB",
// "1kB" (powers of 1000). A space may separate the number from the unit;
// a fraction is allowed where the result is whole bytes ("1.5GiB").
// Parsing is [humanize.ParseBytes], limited to what an int64 holds.
type ByteSize int64

// ParseByteSize parses a size such as "64MiB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	notSize := fmt.Errorf("%q is not a size (a number, optionally with a unit such as KiB, MiB, GiB, KB, MB, GB)", s)
	// humanize takes "1e3" and "0x10" apart as a number and a unit it
	// does not know, and "1,000" as a thousand: a config says what it
	// means in digits and a unit.
	if t == "" || strings.ContainsAny(t, ",") || !strings.ContainsAny(t[:1], "0123456789") {
		return 0, notSize
	}
	n, err := humanize.ParseBytes(t)
	if err != nil || n > math.MaxInt64 {
		return 0, notSize
	}
	if num, unit := splitUnit(t); strings.Contains(num, ".") {
		// humanize computes a fraction in floating point and truncates it;
		// a fraction must come out as whole bytes, exactly ("1.5B" is not
		// a size).
		mult, _ := humanize.ParseBytes("1" + unit)
		r, ok := new(big.Rat).SetString(num)
		if !ok || !decimalRE.MatchString(num) {
			return 0, notSize
		}
		r.Mul(r, new(big.Rat).SetUint64(mult))
		if !r.IsInt() || !r.Num().IsInt64() {
			return 0, notSize
		}
		return ByteSize(r.Num().Int64()), nil
	}
	return ByteSize(n), nil
}

var decimalRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// splitUnit splits "1.5 GiB" into "1.5" and " GiB".
func splitUnit(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		// A TypeError is collected with the others instead of ending the decode.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*b = v
	return nil
}

// MarshalYAML writes the size as [ByteSize.String] does.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

var binaryUnits = []struct {
	suffix string
	mult   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// String formats the size exactly, with the largest binary unit that
// divides it ("64MiB"), or as a plain number.
func (b ByteSize) String() string {
	for _, u := range binaryUnits {
		if b != 0 && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
