// Package human formats quantities for people reading reports and logs.
// It is the one home of such helpers; every report calls it so the same
// quantity reads the same everywhere.
package human

import "fmt"

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
