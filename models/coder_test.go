package models

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
)

func TestEncodeDecodeDeltas(t *testing.T) {
	w := [4]float32{10, 10, 5, 5}
	anchors := []float32{0, 0, 10, 20}
	gt := []float32{5, 0, 25, 20}
	d := EncodeDeltas(anchors, gt, w)
	// Anchor centre (5, 10), size 10×20; box centre (15, 10), size 20×20.
	want := []float32{10 * 10.0 / 10, 0, 5 * float32(math.Ln2), 0}
	for i := range want {
		if !near(d[i], want[i], 1e-5) {
			t.Fatalf("delta %d: got %v, want %v", i, d[i], want[i])
		}
	}
	back := DecodeDeltas(anchors, d, w)
	for i := range gt {
		if !near(back[i], gt[i], 1e-5) {
			t.Fatalf("decode(encode) coordinate %d: got %v, want %v", i, back[i], gt[i])
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	one := [4]float32{1, 1, 1, 1}
	for trial := 0; trial < 100; trial++ {
		a := []float32{rng.Float32() * 50, rng.Float32() * 50, 0, 0}
		a[2], a[3] = a[0]+1+rng.Float32()*40, a[1]+1+rng.Float32()*40
		g := []float32{rng.Float32() * 50, rng.Float32() * 50, 0, 0}
		g[2], g[3] = g[0]+1+rng.Float32()*40, g[1]+1+rng.Float32()*40
		back := DecodeDeltas(a, EncodeDeltas(a, g, one), one)
		for i := range g {
			if math.Abs(float64(back[i]-g[i])) > 1e-3 {
				t.Fatalf("round trip %v → %v", g, back)
			}
		}
	}
	// Huge log-scale deltas are clamped instead of overflowing.
	big := DecodeDeltas([]float32{0, 0, 16, 16}, []float32{0, 0, 100, 100}, one)
	if !near(big[2]-big[0], 1000, 1e-2) || !near(big[3]-big[1], 1000, 1e-2) {
		t.Fatalf("clamped decode gave size %v×%v, want 1000×1000", big[2]-big[0], big[3]-big[1])
	}
}

func TestDeltaCodingRejectsUnpairedRows(t *testing.T) {
	one := [4]float32{1, 1, 1, 1}
	for _, c := range []struct {
		name string
		call func()
	}{
		{"EncodeDeltas", func() { EncodeDeltas([]float32{0, 0, 1, 1}, nil, one) }},
		{"DecodeDeltas", func() { DecodeDeltas([]float32{0, 0, 1}, []float32{0, 0, 1}, one) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				oe, ok := r.(*engine.OpError)
				if !ok || !errors.Is(oe, engine.ErrShape) || oe.Op != "models."+c.name {
					t.Fatalf("panic value %#v, want an *engine.OpError from models.%s", r, c.name)
				}
			}()
			c.call()
		})
	}
}
