package distill

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// fixture makes, once per test binary, a synthetic set of 8 images of
// 64×64 pixels and a retinanet-tiny teacher (wider FPN and head) trained on
// it for a few epochs. It returns the dataset folder and the teacher's
// checkpoint.
func fixture(t *testing.T) (data, teacher string) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "gidedge-distill-test-")
		if fixtureErr != nil {
			return
		}
		data := filepath.Join(fixtureDir, "synth")
		if _, fixtureErr = synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); fixtureErr != nil {
			return
		}
		cfg, err := models.Named("retinanet-tiny")
		if err != nil {
			fixtureErr = err
			return
		}
		cfg.Name = "retinanet-tiny-teacher"
		cfg.FPN.Channels, cfg.Head.Channels = 24, 24
		_, fixtureErr = train.Run(context.Background(), train.Options{
			Config: cfg, Data: data, ValSplit: train.NoEval, Out: filepath.Join(fixtureDir, "teacher"),
			Epochs: 15, Batch: 4, Seed: 5,
		})
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return filepath.Join(fixtureDir, "synth"), filepath.Join(fixtureDir, "teacher", train.LastFile)
}

var (
	twoStageOnce    sync.Once
	twoStageTeacher string
	twoStageErr     error
)

// twoStageFixture trains, once per test binary, a faster-rcnn-tiny teacher
// (wider FPN, RPN tower and box head) on the fixture's data and returns
// its checkpoint.
func twoStageFixture(t *testing.T) (data, teacher string) {
	t.Helper()
	data, _ = fixture(t)
	twoStageOnce.Do(func() {
		cfg, err := models.Named("faster-rcnn-tiny")
		if err != nil {
			twoStageErr = err
			return
		}
		cfg.Name = "faster-rcnn-tiny-teacher"
		cfg.FPN.Channels, cfg.Head.Channels = 24, 24
		h := *cfg.ROIHead
		h.FCDim = 48
		cfg.ROIHead = &h
		out := filepath.Join(fixtureDir, "teacher-two-stage")
		_, twoStageErr = train.Run(context.Background(), train.Options{
			Config: cfg, Data: data, ValSplit: train.NoEval, Out: out, Epochs: 15, Batch: 4, Seed: 5,
		})
		twoStageTeacher = filepath.Join(out, train.LastFile)
	})
	if twoStageErr != nil {
		t.Fatal(twoStageErr)
	}
	return data, twoStageTeacher
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

func studentConfig(t *testing.T) models.Config {
	t.Helper()
	cfg, err := models.Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRunTiny distils the tiny student from the tiny teacher for 24 steps:
// the distillation loss must fall, its parts must be logged next to the
// detection loss, and the run folder must hold what train writes plus
// distill.json and the GI pictures.
func TestRunTiny(t *testing.T) {
	data, teacher := fixture(t)
	out := t.TempDir()
	res := distillTiny(t, studentConfig(t), data, teacher, out, 2)
	checkDistillFalls(t, out, models.LossCls)
	if res.Stats.Images != 96 || res.Stats.GIs == 0 {
		t.Errorf("stats %+v, want 96 images (24 steps × 4) with GIs", res.Stats)
	}
	for _, f := range []string{SettingsFile, train.LastFile, train.BestFile, train.ConfigFile, train.PlotFile, filepath.Join(GIFolder, "step000000_img1.png"), filepath.Join(GIFolder, "step000002_img0.png")} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("run file %s: %v", f, err)
		}
	}
	// best.safetensors is a plain student checkpoint.
	d, _, _, err := models.LoadCheckpoint(filepath.Join(out, train.BestFile))
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Name != "retinanet-tiny" || d.Config.NumClasses != 6 {
		t.Fatalf("best checkpoint holds %s with %d classes, want retinanet-tiny with 6", d.Config.Name, d.Config.NumClasses)
	}
}

// TestRunTwoStage distils the faster-rcnn-tiny student from a two-stage
// teacher with GID (GIs from the RPNs, response on the box heads): the
// distillation loss must fall, and the two-stage detection parts must be
// logged beside it.
func TestRunTwoStage(t *testing.T) {
	if testing.Short() {
		// Training a two-stage teacher and student takes over half a
		// minute on the reference backend; TestDistillerMethods runs every
		// two-stage distillation path there.
		t.Skip("a two-stage training run; TestDistillerMethods covers its code under -short")
	}
	data, teacher := twoStageFixture(t)
	cfg, err := models.Named("faster-rcnn-tiny")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res := distillTiny(t, cfg, data, teacher, out, 0)
	checkDistillFalls(t, out, models.LossRPNCls, models.LossROICls)
	if res.Stats.Images != 96 || res.Stats.GIs == 0 {
		t.Errorf("stats %+v, want 96 images with GIs", res.Stats)
	}
	if res.Final == nil {
		t.Fatal("no evaluation of the two-stage student")
	}
}

// distillTiny distils a student of cfg from teacher for 24 steps (12
// epochs of 2 on the fixture's 8 images), logging every 2 steps, drawing
// dumpGIs images' GIs, evaluated once on the training split.
func distillTiny(t *testing.T, cfg models.Config, data, teacher, out string, dumpGIs int) *Result {
	t.Helper()
	var log bytes.Buffer
	res, err := Run(context.Background(), RunOptions{
		Train: train.Options{
			Config: cfg, Data: data, ValSplit: "train", Out: out,
			Epochs: 12, Batch: 4, EvalEvery: 12, LogEvery: 2, Seed: 1, Log: &log,
		},
		Teacher: teacher, DumpGIs: dumpGIs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	return res
}

// checkDistillFalls reads a 24-step run's 12 training records: each must
// log GID's four parts and the given detection parts, and the sum of the
// GID parts must fall below 70 % of its start.
func checkDistillFalls(t *testing.T, out string, detection ...string) {
	t.Helper()
	recs, err := train.ReadRecords(filepath.Join(out, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var distill []float64
	for _, r := range recs {
		if r.Type != train.RecordTrain {
			continue
		}
		var sum float64
		for _, p := range []string{PartFeature, PartRelation, PartResponseCls, PartResponseReg} {
			v, ok := r.Parts[p]
			if !ok {
				t.Fatalf("record at step %d lacks part %s: %v", r.Step, p, r.Parts)
			}
			sum += v
		}
		for _, p := range detection {
			if _, ok := r.Parts[p]; !ok {
				t.Fatalf("record at step %d lacks the detection part %s", r.Step, p)
			}
		}
		distill = append(distill, sum)
	}
	if len(distill) != 12 {
		t.Fatalf("%d training records, want 12 (24 steps, LogEvery 2)", len(distill))
	}
	first := (distill[0] + distill[1]) / 2
	last := (distill[len(distill)-1] + distill[len(distill)-2]) / 2
	if !(last < 0.7*first) {
		t.Errorf("distillation loss went from %.4f to %.4f, want below 70%%: %v", first, last, distill)
	}
}

// TestResumeExact interrupts a distillation run and resumes it: the final
// weights, optimizer state and adaptation layers must be bit-identical to
// an uninterrupted run's. A resume that asks for other distillation
// settings is refused.
func TestResumeExact(t *testing.T) {
	data, teacher := fixture(t)
	opts := func(out string) RunOptions {
		return RunOptions{
			Train: train.Options{Config: studentConfig(t), Data: data, ValSplit: train.NoEval, Out: out,
				Epochs: 3, Batch: 4, LogEvery: 1, Seed: 2},
			Teacher: teacher,
		}
	}
	whole := t.TempDir()
	if _, err := Run(context.Background(), opts(whole)); err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	first := opts(split)
	first.Train.StopAfter = 3
	res, err := Run(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted {
		t.Fatal("run with StopAfter 3 was not interrupted")
	}
	other := DefaultOptions()
	other.TopK = 5
	_, err = Run(context.Background(), RunOptions{Train: train.Options{Out: split, Resume: true}, Method: &other})
	if !errors.Is(err, train.ErrResume) {
		t.Fatalf("resume with another topk: %v, want ErrResume", err)
	}
	if _, err := Run(context.Background(), RunOptions{Train: train.Options{Out: split, Resume: true}}); err != nil {
		t.Fatal(err)
	}
	a, _, err := checkpoint.Load(filepath.Join(whole, train.LastFile))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := checkpoint.Load(filepath.Join(split, train.LastFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d tensors vs %d after resuming", len(a), len(b))
	}
	extra := 0
	for name, ta := range a {
		tb, ok := b[name]
		if !ok {
			t.Fatalf("tensor %s missing after resume", name)
		}
		if len(name) > 6 && name[:6] == "extra." {
			extra++
		}
		bv := tb.ToHost()
		for i, v := range ta.ToHost() {
			if bv[i] != v {
				t.Fatalf("tensor %s[%d]: %v uninterrupted, %v resumed", name, i, v, bv[i])
			}
		}
	}
	if extra == 0 {
		t.Fatal("last.safetensors holds no extra. (adaptation) tensors")
	}
}
