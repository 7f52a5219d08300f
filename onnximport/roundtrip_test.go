package onnximport

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/distill"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/synthtest"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/train"
)

// roughen gives every batch norm random statistics and affine parameters,
// so that folding them (export) and reading them back (import) is tested
// on values far from the identity.
func roughen(m nn.Module, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 5))
	m.Visit("", func(name string, t *engine.Tensor, _ bool) {
		v := t.ToHost()
		switch {
		case strings.HasSuffix(name, "running_var"):
			for i := range v {
				v[i] = 0.5 + rng.Float32()
			}
		case strings.HasSuffix(name, "running_mean"), strings.Contains(name, "bn.bias"), strings.Contains(name, "norm") && strings.HasSuffix(name, "bias"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.2)
			}
		case strings.Contains(name, "bn.weight"), strings.Contains(name, "norm") && strings.HasSuffix(name, "weight"):
			for i := range v {
				v[i] = 0.5 + rng.Float32()
			}
		default:
			return
		}
		t.CopyFromHost(v)
	})
}

// lateralInputs finds the backbone outputs of a gidedge export: the inputs
// of the FPN's lateral convolutions.
func lateralInputs(t *testing.T, path string) []string {
	t.Helper()
	m, err := onnxgraph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 3)
	for _, n := range m.Graph.Node {
		for i := range out {
			if n.OpType == "Conv" && strings.HasPrefix(n.Name, "fpn.lateral."+string(rune('0'+i))) {
				out[i] = n.Input[0]
			}
		}
	}
	if slices.Contains(out, "") {
		t.Fatalf("no lateral convolutions in %s: %v", path, out)
	}
	return out
}

// copyMissing copies into dst every tensor of src with the same name and
// shape that the pretrained file did not set: the parts gidedge made.
func copyMissing(t *testing.T, dst, src *models.Detector, imported map[string]bool) int {
	t.Helper()
	from, err := nn.State(src)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*engine.Tensor{}
	for _, s := range from {
		byName[s.Name] = s.Tensor
	}
	to, err := nn.State(dst)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range to {
		if imported[s.Name] {
			continue
		}
		f, ok := byName[s.Name]
		if !ok || !slices.Equal(f.Shape(), s.Tensor.Shape()) {
			t.Fatalf("tensor %q %v has no counterpart in the original detector", s.Name, s.Tensor.Shape())
		}
		s.Tensor.CopyFrom(f)
		n++
	}
	return n
}

// relDiff is the largest |a − b| over the largest |a|.
func relDiff(a, b []float32) float64 {
	var d, scale float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(a[i])))
	}
	if d == 0 {
		return 0
	}
	return d / scale
}

func compareDetectors(t *testing.T, want, got *models.Detector, size int) float64 {
	t.Helper()
	x := engine.FromHost(randomImage(3, []int{2, 3, size, size}), 2, 3, size, size)
	worst := 0.0
	engine.NoGrad(func() {
		a, b := want.Forward(x, false), got.Forward(x, false)
		pairs := map[string][2][]*engine.Tensor{"feature": {a.Features, b.Features}, "cls": {a.ClsLogits, b.ClsLogits}, "reg": {a.BoxRegs, b.BoxRegs}, "centerness": {a.Centerness, b.Centerness}}
		for what, p := range pairs {
			if len(p[0]) != len(p[1]) {
				t.Fatalf("%s: %d levels, imported %d", what, len(p[0]), len(p[1]))
			}
			for l := range p[0] {
				if !slices.Equal(p[0][l].Shape(), p[1][l].Shape()) {
					t.Fatalf("%s level %d: shape %v, imported %v", what, l, p[0][l].Shape(), p[1][l].Shape())
				}
				d := relDiff(p[0][l].ToHost(), p[1][l].ToHost())
				if d > 1e-5 {
					t.Errorf("%s level %d: relative difference %.3g, want ≤ 1e-5", what, l, d)
				}
				worst = max(worst, d)
			}
		}
	})
	return worst
}

// tinySet is synthtest's 8 synthetic 64×64 images.
func tinySet(t *testing.T) string { return synthtest.Tiny(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	synthtest.Cleanup()
	os.Exit(code)
}

// TestRoundTripNamedConfigs exports every named config with gidedge's
// exporter, imports it back three ways (backbone, neck, both) and checks
// that the detector rebuilt from the imported config, with gidedge's own
// parts copied from the original, gives the original's outputs within
// 1e-5 relative; then the imported detector trains.
func TestRoundTripNamedConfigs(t *testing.T) {
	classes := []string{"a", "b", "c"}
	for _, name := range models.Names() {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && !strings.HasSuffix(name, "-tiny") {
				t.Skip("-short: the tiny configs cover the same code")
			}
			cfg, err := models.Named(name)
			if err != nil {
				t.Fatal(err)
			}
			// A smaller input keeps the teachers fast; the layers are the config's.
			cfg.Input.Size = min(cfg.Input.Size, 96)
			cfg = cfg.WithClasses(classes)
			orig, err := models.New(cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			roughen(orig, 2)
			dir := t.TempDir()
			path := filepath.Join(dir, name+".onnx")
			if _, err := export.Export(orig, path, export.Options{Outputs: infer.OutputsRaw, WithFeatures: true}); err != nil {
				t.Fatal(err)
			}
			cs := lateralInputs(t, path)
			outs := append(slices.Clone(cs), "feature_0", "feature_1", "feature_2")
			for _, take := range []string{TakeBackbone, TakeNeck, TakeAll} {
				names := outs
				if take == TakeBackbone {
					names = cs
				}
				res, err := Import(path, Options{Take: take, Outputs: names})
				if err != nil {
					t.Fatalf("take %s: %v", take, err)
				}
				weights, config := filepath.Join(dir, take+".safetensors"), filepath.Join(dir, take+".json")
				if err := res.Write(weights, config); err != nil {
					t.Fatal(err)
				}
				back, err := models.Resolve(config)
				if err != nil {
					t.Fatal(err)
				}
				d, err := models.New(back, 9)
				if err != nil {
					t.Fatal(err)
				}
				n, err := models.LoadPretrained(d, back.Pretrained)
				if err != nil {
					t.Fatal(err)
				}
				imported := map[string]bool{}
				for _, tensor := range res.Tensors {
					imported[tensor.Name] = true
				}
				if n != len(imported) {
					t.Fatalf("take %s: LoadPretrained set %d tensors, the import made %d", take, n, len(imported))
				}
				copied := copyMissing(t, d, orig, imported)
				worst := compareDetectors(t, orig, d, cfg.Input.Size)
				t.Logf("take %s: %d imported tensors, %d copied, worst relative difference %.2g (import parity %.2g)", take, n, copied, worst, res.Worst)
			}
			run := trainsImported(t, filepath.Join(dir, TakeAll+".json"))
			if strings.HasSuffix(name, "-tiny") {
				distillsImported(t, name, filepath.Join(dir, TakeAll+".json"), filepath.Join(run, train.LastFile))
			}
		})
	}
}

// trainsImported trains an imported config for two epochs of one step,
// the backbone frozen in the first: the frozen epoch must leave the
// imported weights alone and move the head; the second must move both.
func trainsImported(t *testing.T, config string) string {
	t.Helper()
	cfg, err := models.Resolve(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NumClasses, cfg.ClassNames = 0, nil // take the data's classes
	out := t.TempDir()
	read := func(path string) map[string]*engine.Tensor {
		tensors, _, err := checkpoint.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return tensors
	}
	start := read(cfg.Pretrained)
	base := train.Options{Config: cfg, Data: tinySet(t), ValSplit: train.NoEval, Out: out, Epochs: 2, Batch: 4, LR: 1e-3,
		Seed: 1, FreezeBackboneEpochs: 1, StopAfter: 2}
	res, err := train.Run(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if res.HParams.PretrainedTensors != len(start) {
		t.Fatalf("the run initialised %d tensors from %s, the file holds %d", res.HParams.PretrainedTensors, cfg.Pretrained, len(start))
	}
	after := read(filepath.Join(out, train.LastFile))
	moved := func(prefix string) (bool, bool) {
		anyMoved, seen := false, false
		for name, t0 := range start {
			if !strings.HasPrefix(name, "model."+prefix) || strings.Contains(name, "running_") {
				continue
			}
			seen = true
			if relDiff(t0.ToHost(), after[name].ToHost()) > 0 {
				anyMoved = true
			}
		}
		return anyMoved, seen
	}
	// StopAfter 2 with one step per epoch (8 images, batch 4 → 2 steps)
	// stops inside epoch 1 after its two steps: all frozen.
	if m, seen := moved("backbone."); !seen || m {
		t.Errorf("the frozen backbone moved (seen %v, moved %v)", seen, m)
	}
	base.Resume, base.Config, base.StopAfter, base.FreezeBackboneEpochs = true, models.Config{}, 0, 0
	if _, err := train.Run(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	after = read(filepath.Join(out, train.LastFile))
	if m, _ := moved("backbone."); !m {
		t.Errorf("the backbone did not train after its frozen epoch")
	}
	return out
}

// distillsImported runs GID both ways: the trained imported detector as
// the teacher of the plain named config, and the imported config as the
// student of it (a teacher of the same layout).
func distillsImported(t *testing.T, plain, imported, teacher string) {
	t.Helper()
	student, err := models.Resolve(imported)
	if err != nil {
		t.Fatal(err)
	}
	student.NumClasses, student.ClassNames = 0, nil
	named, err := models.Named(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []models.Config{named, student} {
		res, err := distill.Run(context.Background(), distill.RunOptions{Teacher: teacher, Train: train.Options{
			Config: s, Data: tinySet(t), ValSplit: train.NoEval, Out: t.TempDir(), Epochs: 1, Batch: 4, Seed: 2, StopAfter: 1}})
		if err != nil {
			t.Fatalf("distil %s from the imported teacher: %v", s.Name, err)
		}
		if res.Steps != 1 {
			t.Fatalf("distil %s: %d steps", s.Name, res.Steps)
		}
	}
}
