package models

import (
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
)

// BenchmarkStep times forward, loss and backward of the named students,
// the two-stage one beside RetinaNet's, on a batch of 8 images at 160 px
// with five objects each (`go test ./models -run - -bench Step`).
func BenchmarkStep(b *testing.B) {
	for _, name := range []string{"retinanet-student", "faster-rcnn-student"} {
		b.Run(name, func(b *testing.B) { benchmarkStep(b, name) })
	}
}

func benchmarkStep(b *testing.B, name string) {
	cfg, err := Named(name)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(cfg.WithClasses([]string{"a", "b", "c"}), 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := engine.RandN(rng, 1, 8, 3, 160, 160)
	targets := make([][]dataset.Target, 8)
	for i := range targets {
		for j := range 5 {
			x1, y1 := 120*rng.Float64(), 120*rng.Float64()
			s := 10 + 30*rng.Float64()
			targets[i] = append(targets[i], dataset.Target{Box: dataset.Box{X1: x1, Y1: y1, X2: x1 + s, Y2: y1 + s}, Class: j % 3})
		}
	}
	b.ResetTimer()
	for range b.N {
		o := d.Forward(x, true)
		loss, _, err := d.Loss(o, targets)
		if err != nil {
			b.Fatal(err)
		}
		loss.Backward()
		loss.Release()
	}
}
