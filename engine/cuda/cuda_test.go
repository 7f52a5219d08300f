//go:build cgo

package cuda_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/cuda"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

var (
	openOnce sync.Once
	opened   map[bool]*cuda.Backend
	openErr  error
)

// open returns a backend on the simulator (or on the real libraries of
// GIDEDGE_CUDA_LIBS), with or without cuDNN.
func open(t *testing.T, dnn bool) *cuda.Backend {
	t.Helper()
	openOnce.Do(func() {
		cfg, _, err := sim.TestConfig()
		if err != nil {
			openErr = err
			return
		}
		opened = map[bool]*cuda.Backend{}
		for _, d := range []bool{true, false} {
			b, err := cuda.Open(cuda.Options{Libraries: cfg, NoDNN: !d})
			if err != nil {
				openErr = err
				return
			}
			opened[d] = b
		}
	})
	if openErr != nil {
		t.Fatalf("CUDA backend: %v", openErr)
	}
	return opened[dnn]
}

func TestConformance(t *testing.T) {
	b := open(t, true)
	t.Log(b.Describe())
	backendtest.Run(t, b)
}

// TestConformanceWithoutCUDNN runs the suite with cuDNN turned off: the
// convolutions take the im2col + cuBLAS path a machine without cuDNN uses.
func TestConformanceWithoutCUDNN(t *testing.T) {
	b := open(t, false)
	if !strings.Contains(b.Describe(), "im2col") {
		t.Fatalf("Describe %q does not name the im2col path", b.Describe())
	}
	backendtest.Run(t, b)
}
