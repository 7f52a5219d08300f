package train

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
)

// killOptions is the run TestSIGKILLResume interrupts: 4 steps an epoch, a
// checkpoint after every step and a metrics row every 2 steps, so a kill
// lands mid-epoch between rows.
func killOptions(t *testing.T, data, out string) Options {
	cfg := tinyConfig(t, "fcos-tiny")
	cfg.Train.Optimizer, cfg.Train.Momentum, cfg.Train.LR = "sgd", 0.9, 0.01
	return Options{Config: cfg, Data: data, ValSplit: "train", Out: out, Epochs: 2, Batch: 2, Seed: 7,
		CheckpointEvery: 1, LogEvery: 2}
}

// TestSIGKILLResume trains in a child process that is killed with SIGKILL
// during its sixth step (mid-epoch 2, possibly while a checkpoint is being
// written), resumes the run here, and requires every tensor of the final
// last.safetensors to equal an uninterrupted run's bit for bit, and the
// metrics rows to fall on the same steps. train_state holds wall-clock
// seconds, so tensors are compared, not file hashes.
func TestSIGKILLResume(t *testing.T) {
	if out := os.Getenv("GIDEDGE_TRAIN_KILL_CHILD"); out != "" {
		data := filepath.Join(out, "..", "data")
		opts := killOptions(t, data, out)
		opts.ExtraLoss = func(s *StepContext) (*engine.Tensor, map[string]float32, error) {
			fmt.Printf("STEP %d\n", s.GlobalStep)
			return nil, nil, nil
		}
		_, err := Run(context.Background(), opts)
		fmt.Println("DONE", err)
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("spawns a child process that trains")
	}
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if _, err := synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(root, "full")
	if _, err := Run(context.Background(), killOptions(t, data, full)); err != nil {
		t.Fatal(err)
	}

	cut := filepath.Join(root, "cut")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLResume$")
	cmd.Env = append(os.Environ(), "GIDEDGE_TRAIN_KILL_CHILD="+cut)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		if sc.Text() == "STEP 5" {
			_ = cmd.Process.Kill()
			killed = true
			break
		}
		if strings.HasPrefix(sc.Text(), "DONE") {
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the child finished or failed before step 5; nothing was killed")
	}

	opts := Options{Out: cut, Resume: true}
	res, err := Run(context.Background(), opts)
	if err != nil || res.Interrupted || res.Steps != 8 {
		t.Fatalf("resumed run: %+v, %v; want 8 steps done", res, err)
	}
	a, b := loadTensors(t, filepath.Join(full, LastFile)), loadTensors(t, filepath.Join(cut, LastFile))
	if len(a) != len(b) {
		t.Fatalf("%d tensors uninterrupted, %d after SIGKILL and resume", len(a), len(b))
	}
	for name, ta := range a {
		tb := b[name]
		if tb == nil || !slices.Equal(ta.Shape(), tb.Shape()) || !slices.Equal(ta.ToHost(), tb.ToHost()) {
			t.Fatalf("tensor %q differs after SIGKILL and resume", name)
		}
	}
	rowSteps := func(dir string) []int {
		recs, err := ReadRecords(filepath.Join(dir, MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		var steps []int
		for _, r := range recs {
			steps = append(steps, r.Step)
		}
		return steps
	}
	if want, got := rowSteps(full), rowSteps(cut); !slices.Equal(want, got) {
		t.Fatalf("metrics rows at steps %v after the resume, %v uninterrupted", got, want)
	}
}

// editCheckpoint rewrites a checkpoint with the same tensors and the
// metadata edit makes, as a user editing the header would.
func editCheckpoint(t *testing.T, path string, edit func(meta map[string]string)) {
	t.Helper()
	tensors, meta, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(meta)
	var named []nn.Named
	for name, tt := range tensors {
		named = append(named, nn.Named{Name: name, Tensor: tt})
	}
	if err := checkpoint.Save(path, named, meta); err != nil {
		t.Fatal(err)
	}
}

func editState(t *testing.T, path string, edit func(st map[string]any)) {
	t.Helper()
	editCheckpoint(t, path, func(meta map[string]string) {
		var st map[string]any
		if err := json.Unmarshal([]byte(meta[MetaTrainState]), &st); err != nil {
			t.Fatal(err)
		}
		edit(st)
		b, _ := json.Marshal(st)
		meta[MetaTrainState] = string(b)
	})
}

// TestResumeValidatesTrainState resumes from checkpoints whose train_state
// was edited field by field: every one must be refused naming the field,
// and the run folder must be left as it was.
func TestResumeValidatesTrainState(t *testing.T) {
	data := tinySet(t)
	base := t.TempDir()
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: NoEval, Out: base, Epochs: 3, Batch: 2, StopAfter: 5}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(base, LastFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		field string
		value any
	}{
		{"epoch", -5}, {"epoch", 4}, {"step", -1}, {"step", 5}, {"global_step", 4}, {"global_step", -1},
		{"best_epoch", 2}, {"best_epoch", -1}, {"best_ap", 0.5}, {"train_seconds", -3}, {"wait_seconds", -1},
		{"images", -1}, {"images", 1000}, {"eval_pending", true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s=%v", tc.field, tc.value), func(t *testing.T) {
			out := t.TempDir()
			last := filepath.Join(out, LastFile)
			if err := os.WriteFile(last, saved, 0o644); err != nil {
				t.Fatal(err)
			}
			editState(t, last, func(st map[string]any) { st[tc.field] = tc.value })
			before, _ := os.ReadFile(last)
			_, err := Run(context.Background(), Options{Out: out, Resume: true, Data: data})
			if !errors.Is(err, ErrResume) || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), last) {
				t.Fatalf("got %v, want ErrResume naming %s and %s", err, tc.field, last)
			}
			if after, _ := os.ReadFile(last); string(after) != string(before) {
				t.Fatal("a refused resume changed last.safetensors")
			}
		})
	}
	// hparams that contradict the stored config are refused too.
	out := t.TempDir()
	last := filepath.Join(out, LastFile)
	if err := os.WriteFile(last, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	editCheckpoint(t, last, func(meta map[string]string) {
		meta[MetaHParams] = strings.Replace(meta[MetaHParams], `"batch":2`, `"batch":3`, 1)
	})
	if _, err := Run(context.Background(), Options{Out: out, Resume: true, Data: data}); !errors.Is(err, ErrResume) || !strings.Contains(err.Error(), "batch") {
		t.Fatalf("edited hparams: got %v, want ErrResume naming batch", err)
	}
}

// TestResumeNeverReplacesABetterBest gives best.safetensors a perfect
// recorded AP and wipes the best fields of train_state (valid values: no
// best yet): the resumed run must compare against the file and keep it.
func TestResumeNeverReplacesABetterBest(t *testing.T) {
	data := tinySet(t)
	out := t.TempDir()
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: "train", Out: out, Epochs: 2, Batch: 4, StopAfter: 3}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	best := filepath.Join(out, BestFile)
	editCheckpoint(t, best, func(meta map[string]string) {
		meta[MetaMetrics] = `{"AP":1}`
		meta[MetaEpoch] = "1"
	})
	before, err := os.ReadFile(best)
	if err != nil {
		t.Fatal(err)
	}
	editState(t, filepath.Join(out, LastFile), func(st map[string]any) { st["best_ap"], st["best_epoch"] = 0, 0 })
	var log strings.Builder
	res, err := Run(context.Background(), Options{Out: out, Resume: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(best); string(after) != string(before) {
		t.Fatalf("the resumed run replaced a best.safetensors of AP 1 (its own best AP %.4f)", res.Final.AP)
	}
	if res.BestAP != 1 || res.BestEpoch != 1 || !strings.Contains(log.String(), "holds AP 1.0000") {
		t.Fatalf("result best %.4f at epoch %d, log %q; want the file's AP 1 at epoch 1 and a warning", res.BestAP, res.BestEpoch, log.String())
	}
}

// TestResumeAndLoadRejectCorruptCheckpoints flips one byte of tensor data
// in last.safetensors: resuming and loading the model for evaluation must
// both fail with checkpoint.ErrCorrupt naming the tensor and the file.
func TestResumeAndLoadRejectCorruptCheckpoints(t *testing.T) {
	data := tinySet(t)
	out := t.TempDir()
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: NoEval, Out: out, Epochs: 2, Batch: 4, StopAfter: 1}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(out, LastFile)
	raw, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-3] ^= 0x01 // inside the last tensor's data
	if err := os.WriteFile(last, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+hlen], &header); err != nil {
		t.Fatal(err)
	}
	lastTensor, end := "", 0.0
	for name, msg := range header {
		var e struct {
			DataOffsets [2]float64 `json:"data_offsets"`
		}
		if json.Unmarshal(msg, &e) == nil && e.DataOffsets[1] > end {
			lastTensor, end = name, e.DataOffsets[1]
		}
	}
	_, err = Run(context.Background(), Options{Out: out, Resume: true})
	if !errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("%q", lastTensor)) || !strings.Contains(err.Error(), last) {
		t.Fatalf("resume: got %v, want ErrCorrupt naming %q and %s", err, lastTensor, last)
	}
	if _, _, _, err := models.LoadCheckpoint(last); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("load for eval: got %v, want ErrCorrupt", err)
	}
}

func TestEmptySplitSaysSo(t *testing.T) {
	data := tinySet(t)
	dir := t.TempDir()
	// A copy of the set whose "train" split lists no images.
	raw, err := os.ReadFile(filepath.Join(data, "annotations", "instances_train.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	f["images"], f["annotations"] = json.RawMessage("[]"), json.RawMessage("[]")
	empty, _ := json.Marshal(f)
	if err := os.MkdirAll(filepath.Join(dir, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "annotations", "instances_train.json"), empty, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Config: tinyConfig(t, "fcos-tiny"), Data: dir, ValSplit: NoEval, Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "has no images") || strings.Contains(err.Error(), "--batch") {
		t.Fatalf("got %v, want a 'has no images' error without the batch advice", err)
	}
}

// TestTrainReportsRepairs gives the training split a box with negative size:
// `train` must report dropping it with the same words `eval` uses.
func TestTrainReportsRepairs(t *testing.T) {
	data := tinySet(t)
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(data, "annotations", "instances_train.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	anns := f["annotations"].([]any)
	bad := maps.Clone(anns[0].(map[string]any))
	bad["id"], bad["bbox"] = 9999, []any{40, 40, -10, 5}
	f["annotations"] = append(anns, bad)
	if err := os.MkdirAll(filepath.Join(dir, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(data, "images"), filepath.Join(dir, "images")); err != nil {
		t.Fatal(err)
	}
	edited, _ := json.Marshal(f)
	if err := os.WriteFile(filepath.Join(dir, "annotations", "instances_train.json"), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Load(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	line := ds.Report.Repairs[0].String()
	if !strings.Contains(line, "zero area") {
		t.Fatalf("the edited set reports %q, want a zero-area repair", line)
	}
	var log strings.Builder
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: dir, ValSplit: NoEval, Out: t.TempDir(), Batch: 4, StopAfter: 1, Log: &log}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "train:   "+line) || !strings.Contains(log.String(), `dataset `+filepath.Base(dir)+` (coco, split "train")`) {
		t.Fatalf("train log does not report the repair %q:\n%s", line, log.String())
	}
}

// TestResumeAtAnEpochsEnd stops right after an epoch's last step, before
// the epoch's end (its step count equals the epoch's steps): a valid state
// that the resumed run must accept and finish.
func TestResumeAtAnEpochsEnd(t *testing.T) {
	data := tinySet(t)
	probe, err := Run(context.Background(), Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: NoEval, Out: t.TempDir(), Epochs: 2, Batch: 4, StopAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	steps := probe.HParams.StepsPerEpoch
	out := t.TempDir()
	opts := Options{Config: tinyConfig(t, "fcos-tiny"), Data: data, ValSplit: NoEval, Out: out, Epochs: 2, Batch: 4, StopAfter: steps}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{Out: out, Resume: true, Data: data})
	if err != nil {
		t.Fatalf("resuming after epoch 1's last step: %v", err)
	}
	if res.Interrupted || res.Steps != 2*steps {
		t.Fatalf("resumed run: interrupted %v after %d steps, want %d steps done", res.Interrupted, res.Steps, 2*steps)
	}
}
