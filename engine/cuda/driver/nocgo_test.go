//go:build !cgo

package driver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// TestOpenWithoutCgo: a binary built with CGO_ENABLED=0 compiles this
// package and reports the backend unavailable.
func TestOpenWithoutCgo(t *testing.T) {
	_, err := driver.Open(driver.DefaultConfig())
	if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("Open without cgo: %v", err)
	}
	if r := driver.Probe(driver.DefaultConfig()); r.Err == nil {
		t.Fatal("Probe without cgo reports CUDA usable")
	}
}
