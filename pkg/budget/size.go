package budget

import (
	"fmt"
	"strconv"
	"strings"
)

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize reads a byte size: a whole number of bytes, or a number with one
// of the units B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of
// 1024): "2MiB", "512KiB", "1.5MB".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || t == "" {
		return 0, fmt.Errorf("must be a size such as 2MiB, 512KiB or 1000000, got %q", s)
	}
	return int64(v * float64(mult)), nil
}

// FormatSize renders n bytes in the largest binary unit that keeps it short.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<20) == 0:
		return trimFloat(float64(n)/(1<<30)) + "GiB"
	case n >= 1<<20 && n%(1<<10) == 0:
		return trimFloat(float64(n)/(1<<20)) + "MiB"
	case n >= 1<<10:
		return trimFloat(float64(n)/(1<<10)) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

func trimFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
