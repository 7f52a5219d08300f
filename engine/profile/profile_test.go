package profile_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/profile"
	"github.com/gidedge/gidedge/engine/ref"
)

// TestConformance runs the suite through a started wrapper: every kernel
// must reach the wrapped backend unchanged.
func TestConformance(t *testing.T) {
	p := profile.Wrap(ref.New())
	p.Start()
	backendtest.Run(t, p)
	if len(p.Report()) == 0 {
		t.Fatal("a started wrapper timed nothing")
	}
}

// TestFamiliesAndPhases runs a depthwise-separable block with batch norm
// and ReLU6 through the engine on the wrapper and checks where the time
// went.
func TestFamiliesAndPhases(t *testing.T) {
	p := profile.Wrap(ref.New())
	backend.UseBackend(p)
	defer func() {
		if _, err := backend.Use(ref.Name); err != nil {
			t.Error(err)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	x := engine.RandN(rng, 1, 2, 4, 6, 6)
	dw := engine.RandN(rng, 1, 4, 1, 3, 3).SetRequiresGrad(true)
	pw := engine.RandN(rng, 1, 5, 4, 1, 1).SetRequiresGrad(true)
	gamma, beta := engine.Full(1, 5).SetRequiresGrad(true), engine.Zeros(5).SetRequiresGrad(true)
	st := &engine.BatchNormState{RunningMean: engine.Zeros(5), RunningVar: engine.Full(1, 5), Momentum: 0.1, Eps: 1e-5}

	before := len(p.Report())
	p.Start()
	p.SetPhase(profile.Forward)
	h := engine.Conv2d(x, dw, nil, engine.ConvOptions{Pad: 1, Groups: 4})
	y := engine.Clamp(engine.BatchNorm2d(engine.Conv2d(h, pw, nil, engine.ConvOptions{}), gamma, beta, st, true), 0, 6)
	loss := engine.Mean(y)
	p.SetPhase(profile.Backward)
	loss.Backward()
	p.Stop()
	loss.Release()
	if before != 0 {
		t.Fatalf("a stopped wrapper recorded %d families", before)
	}
	rows := map[profile.Family]profile.Row{}
	for _, r := range p.Report() {
		rows[r.Family] = r
	}
	for _, f := range []profile.Family{profile.Depthwise, profile.Conv1x1, profile.BatchNorm, profile.Activation} {
		r, ok := rows[f]
		if !ok || r.Calls[profile.Forward] != 1 || r.Calls[profile.Backward] != 1 {
			t.Errorf("family %q: %+v, want one forward and one backward call", f, r)
		}
	}
	if _, ok := rows[profile.Conv]; ok {
		t.Errorf("no spatial dense convolution ran, but %q has %+v", profile.Conv, rows[profile.Conv])
	}
	p.Reset()
	if len(p.Report()) != 0 {
		t.Error("Reset kept figures")
	}
}
