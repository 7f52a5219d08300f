package train

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/internal/synthtest"
	"github.com/gidedge/gidedge/models"
)

// tinySet is synthtest's 8 synthetic 64×64 images.
func tinySet(t *testing.T) string { return synthtest.Tiny(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	synthtest.Cleanup()
	os.Exit(code)
}

func tinyConfig(t *testing.T, name string) models.Config {
	t.Helper()
	cfg, err := models.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOverfitTinySet trains the tiny detectors on eight images and scores
// them on the same images: the loss must fall and AP50 rise far above the
// near-zero AP of an untrained detector.
func TestOverfitTinySet(t *testing.T) {
	for _, name := range []string{"retinanet-tiny", "fcos-tiny"} {
		t.Run(name, func(t *testing.T) {
			data := tinySet(t)
			out := t.TempDir()
			res, err := Run(context.Background(), Options{
				Config: tinyConfig(t, name), Data: data, ValSplit: "train", Out: out,
				Epochs: 40, Batch: 4, EvalEvery: 40, LogEvery: 2, Seed: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := ReadRecords(filepath.Join(out, MetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			var losses []float64
			for _, r := range recs {
				if r.Type == RecordTrain {
					losses = append(losses, r.Loss)
				}
			}
			if len(losses) != 40 {
				t.Fatalf("%d training records, want 40 (80 steps, LogEvery 2)", len(losses))
			}
			first, last := losses[0], losses[len(losses)-1]
			t.Logf("loss %.3f → %.3f, AP50 %.3f, AP %.3f", first, last, res.Final.AP50, res.Final.AP)
			if !(last < 0.5*first) {
				t.Errorf("loss fell from %.3f to %.3f, want below half", first, last)
			}
			if res.Final == nil || res.Final.AP50 < 0.5 {
				t.Fatalf("AP50 after overfitting = %+v, want ≥ 0.5", res.Final)
			}
			for _, f := range []string{LastFile, BestFile, ConfigFile, HParamsFile, PlotFile, SummaryFile} {
				if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
					t.Errorf("run file %s: %v", f, err)
				}
			}
			d, _, _, err := models.LoadCheckpoint(filepath.Join(out, BestFile))
			if err != nil {
				t.Fatal(err)
			}
			ds, err := dataset.Load(data, "train")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Config.ClassNames, ds.ClassNames()) {
				t.Fatalf("best checkpoint classes %v, dataset's %v", d.Config.ClassNames, ds.ClassNames())
			}
		})
	}
}

func loadTensors(t *testing.T, path string) map[string]*engine.Tensor {
	t.Helper()
	ts, _, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// adapter is a stand-in for distillation's adaptation layers.
type adapter struct{ conv *nn.Conv2d }

func (a *adapter) Visit(prefix string, v nn.Visitor) { a.conv.Visit(nn.Join(prefix, "adapt"), v) }

func newAdapter(ch int) *adapter {
	return &adapter{conv: nn.NewConv2d(rand.New(rand.NewPCG(1, 1)), nn.ConvConfig{In: ch, Out: ch, Kernel: 1, Bias: true})}
}

// hintLoss pulls the adapted finest FPN level towards zero: a real extra
// term with gradients into both the detector and the adapter.
func hintLoss(a *adapter) func(s *StepContext) (*engine.Tensor, map[string]float32, error) {
	return func(s *StepContext) (*engine.Tensor, map[string]float32, error) {
		f := a.conv.Forward(s.Outputs.Features[0])
		l := engine.MulScalar(engine.Mean(engine.Mul(f, f)), 0.1)
		return l, map[string]float32{"hint": l.Item()}, nil
	}
}

// TestExactResume interrupts a run (by cancelling its context in the middle
// of an epoch, and by StopAfter at another step), resumes it, and requires
// every weight, batch-norm statistic, optimizer buffer and extra-module
// tensor to equal those of an uninterrupted run bit for bit. Augmentation
// and an extra loss are on so their state is covered too.
func TestExactResume(t *testing.T) {
	data := tinySet(t)
	cfg := tinyConfig(t, "retinanet-tiny")
	cfg.Train.Augment = true
	cfg.Train.Optimizer = "sgd"
	cfg.Train.Momentum = 0.9
	cfg.Train.LR = 0.01
	base := func(out string, a *adapter) Options {
		return Options{Config: cfg, Data: data, ValSplit: "train", Out: out, Epochs: 3, Batch: 3, Seed: 5, Extra: a, ExtraLoss: hintLoss(a)}
	}

	full := t.TempDir()
	if _, err := Run(context.Background(), base(full, newAdapter(16))); err != nil {
		t.Fatal(err)
	}

	cut := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	opts := base(cut, newAdapter(16))
	hook := opts.ExtraLoss
	opts.ExtraLoss = func(s *StepContext) (*engine.Tensor, map[string]float32, error) {
		if s.GlobalStep == 2 { // the first step of epoch 2 (2 steps per epoch)
			cancel()
		}
		return hook(s)
	}
	res, err := Run(ctx, opts)
	if !errors.Is(err, context.Canceled) || res == nil || !res.Interrupted || res.Steps != 3 {
		t.Fatalf("interrupted run: result %+v, error %v; want Interrupted after 3 steps and context.Canceled", res, err)
	}
	// Resume, stop again by StopAfter, resume to the end. Fresh adapters
	// prove the extra module is restored from the checkpoint.
	o := base(cut, newAdapter(16))
	o.Resume, o.Config, o.StopAfter = true, models.Config{}, 5
	if res, err = Run(context.Background(), o); err != nil || !res.Interrupted || res.Steps != 5 {
		t.Fatalf("second leg: %+v, %v", res, err)
	}
	o.StopAfter = 0
	if res, err = Run(context.Background(), o); err != nil || res.Interrupted || res.Steps != 6 {
		t.Fatalf("final leg: %+v, %v", res, err)
	}

	a, b := loadTensors(t, filepath.Join(full, LastFile)), loadTensors(t, filepath.Join(cut, LastFile))
	if len(a) != len(b) {
		t.Fatalf("%d tensors uninterrupted, %d resumed", len(a), len(b))
	}
	for _, want := range []string{"extra.adapt.weight", "optim.step", "model.head.cls_out.bias"} {
		if a[want] == nil {
			t.Fatalf("checkpoint lacks %q", want)
		}
	}
	for name, ta := range a {
		tb := b[name]
		if tb == nil || !slices.Equal(ta.ToHost(), tb.ToHost()) {
			t.Fatalf("tensor %q differs after resuming", name)
		}
	}
	// Metrics of the resumed run: one eval per epoch, no duplicated steps.
	recs, err := ReadRecords(filepath.Join(cut, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	evals := 0
	lastStep := 0
	for _, r := range recs {
		if r.Step < lastStep {
			t.Fatalf("metrics go back from step %d to %d", lastStep, r.Step)
		}
		lastStep = r.Step
		if r.Type == RecordEval {
			evals++
		}
		if r.Type == RecordTrain && r.Parts["hint"] == 0 {
			t.Fatalf("train record without the extra loss part: %+v", r)
		}
	}
	if evals != 3 {
		t.Fatalf("%d evaluations recorded, want 3", evals)
	}
}

func TestResumeRejectsChangedOptions(t *testing.T) {
	data := tinySet(t)
	out := t.TempDir()
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: NoEval, Out: out, Epochs: 2, Batch: 4, StopAfter: 1}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	opts.Resume, opts.LR = true, 0.5
	_, err := Run(context.Background(), opts)
	if !errors.Is(err, ErrResume) || !strings.Contains(err.Error(), "--lr 0.5") {
		t.Fatalf("resume with another lr: %v, want ErrResume naming --lr", err)
	}
	_, err = Run(context.Background(), Options{Out: t.TempDir(), Resume: true})
	if !errors.Is(err, ErrResume) || !strings.Contains(err.Error(), LastFile) {
		t.Fatalf("resume without a checkpoint: %v", err)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	data := tinySet(t)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"batch", Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, Batch: 50}, "fewer than the batch size 50"},
		{"split", Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, TrainSplit: "nope"}, `training split "nope"`},
		{"val", Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: "nope", Batch: 2}, "--val-split -"},
		{"size", Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ImgSize: 50}, "input.size 50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Out = t.TempDir()
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
