// Package human formats quantities for people reading reports and logs.
// It is the one home of such helpers; every report calls it so the same
// quantity reads the same everywhere.
package human

import (
	"fmt"
	"sort"
	"strings"
)

// Bytes formats a size with binary units: "812 B", "20.5 KiB", "2.31 MiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Counts lists a tally by key in sorted order, each entry written with
// format (given the key and its count, e.g. "%s %d" or "%s ×%d"), joined
// by commas; "" for an empty tally.
func Counts(m map[string]int, format string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return strings.Join(parts, ", ")
}
