package ref_test

import (
	"errors"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/ref"
)

// TestConformance runs the suite with the reference on both sides: it
// checks the suite's edge cases (garbage destinations, in-place calls,
// typed panics) against the reference's own definitions.
func TestConformance(t *testing.T) { backendtest.Run(t, ref.New()) }

func TestFreePoisons(t *testing.T) {
	r := ref.New()
	b := r.Alloc(backend.Float32, 4)
	r.Free(b)
	defer func() {
		e, ok := recover().(*backend.Error)
		if !ok || !errors.Is(e, backend.ErrArgument) {
			t.Fatalf("use after Free: got %v, want a *backend.Error", e)
		}
	}()
	r.Fill(b, 1)
}
