package dataset

import (
	"fmt"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// writeFileAtomic writes data so readers see the old file or the whole new one.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return nil
}
