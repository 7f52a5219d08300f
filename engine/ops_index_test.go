package engine_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

func iota(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)
	}
	return out
}

func TestIndexSelect(t *testing.T) {
	x := engine.FromHost(iota(12), 3, 4)
	got := engine.IndexSelect(x, 1, []int{3, 0, 3})
	want := []float32{3, 0, 3, 7, 4, 7, 11, 8, 11}
	if !slices.Equal(got.Shape(), []int{3, 3}) || !slices.Equal(got.ToHost(), want) {
		t.Fatalf("got %v, want [3 3]%v", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	p := enginetest.Param(rng, 1, 2, 5, 3)
	for axis, idx := range [][]int{{1, 1, 0}, {4, 0, 4, 2}, {2}} {
		enginetest.GradCheck(t, "IndexSelect", enginetest.DefaultTolerance, func() *engine.Tensor {
			return engine.IndexSelect(p, axis, idx)
		}, p)
	}
}

func TestScatterAdd(t *testing.T) {
	dst := engine.FromHost(iota(6), 3, 2)
	src := engine.FromHost([]float32{10, 20, 30, 40}, 2, 2)
	got := engine.ScatterAdd(dst, 0, []int{2, 2}, src)
	want := []float32{0, 1, 2, 3, 44, 65}
	if !slices.Equal(got.ToHost(), want) {
		t.Fatalf("got %v, want %v", got.ToHost(), want)
	}
	if !slices.Equal(dst.ToHost(), iota(6)) {
		t.Fatalf("ScatterAdd modified its input: %v", dst.ToHost())
	}
	rng := rand.New(rand.NewPCG(2, 2))
	d := enginetest.Param(rng, 1, 3, 4, 5)
	s := enginetest.Param(rng, 1, 3, 6, 5)
	enginetest.GradCheck(t, "ScatterAdd", enginetest.DefaultTolerance, func() *engine.Tensor {
		return engine.ScatterAdd(d, 1, []int{0, 3, 3, 1, 0, 2}, s)
	}, d, s)
}

func TestGather(t *testing.T) {
	x := engine.FromHost(iota(6), 2, 3)
	idx := engine.FromHost([]float32{2, 0, 1, 1}, 2, 2)
	got := engine.Gather(x, 1, idx)
	if want := []float32{2, 0, 4, 4}; !slices.Equal(got.ToHost(), want) {
		t.Fatalf("axis 1: got %v, want %v", got.ToHost(), want)
	}
	got = engine.Gather(x, 0, engine.FromHost([]float32{1, 0, 1}, 1, 3))
	if want := []float32{3, 1, 5}; !slices.Equal(got.ToHost(), want) {
		t.Fatalf("axis 0: got %v, want %v", got.ToHost(), want)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	p := enginetest.Param(rng, 1, 3, 4, 5)
	ix := engine.Zeros(2, 6, 5)
	enginetest.Edit(ix, func(v []float32) {
		for i := range v {
			v[i] = float32(rng.IntN(4))
		}
	})
	enginetest.GradCheck(t, "Gather", enginetest.DefaultTolerance, func() *engine.Tensor {
		return engine.Gather(p, 1, ix)
	}, p)
}

func TestIndexErrors(t *testing.T) {
	x := engine.Zeros(2, 3)
	cases := map[string]func(){
		"IndexSelect":      func() { engine.IndexSelect(x, 1, []int{3}) },
		"ScatterAdd":       func() { engine.ScatterAdd(x, 0, []int{0}, engine.Zeros(2, 3)) },
		"Gather":           func() { engine.Gather(x, 1, engine.FromHost([]float32{0.5}, 1, 1)) },
		"Gather/rank":      func() { engine.Gather(x, 1, engine.Zeros(2)) },
		"IndexSelect/axis": func() { engine.IndexSelect(x, 2, []int{0}) },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			err := engine.Guard(func() error { fn(); return nil })
			if !errors.Is(err, engine.ErrShape) {
				t.Fatalf("got %v, want a shape error", err)
			}
		})
	}
}
