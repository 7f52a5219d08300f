package enginetest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
)

type recorder struct{ msgs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func TestGradCheckCatchesWrongGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := Param(rng, 1, 3, 4)
	// x.Detach()·x has true derivative 2x, but the graph only sees one x.
	var r recorder
	if n := GradCheck(&r, "wrong", DefaultTolerance, func() *engine.Tensor { return engine.Mul(x.Detach(), x) }, x); n == 0 || len(r.msgs) == 0 {
		t.Fatal("a wrong gradient passed the check")
	}
	r = recorder{}
	if n := GradCheck(&r, "right", DefaultTolerance, func() *engine.Tensor { return engine.Mul(x, x) }, x); n != 0 {
		t.Fatalf("a correct gradient failed: %v", r.msgs)
	}
}
