package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/models"
)

// state is the progress saved in last.safetensors.
type state struct {
	Epoch        int     `json:"epoch"` // epoch to continue, 0-based
	Step         int     `json:"step"`  // next step within Epoch
	GlobalStep   int     `json:"global_step"`
	BestAP       float64 `json:"best_ap"`
	BestEpoch    int     `json:"best_epoch"`
	TrainSeconds float64 `json:"train_seconds"`
	WaitSeconds  float64 `json:"wait_seconds"`
	Images       int64   `json:"images"`
	// EvalPending marks an epoch whose evaluation was interrupted; a
	// resumed run evaluates it before training on.
	EvalPending bool `json:"eval_pending,omitempty"`
}

// MetaEpoch is the best.safetensors metadata key holding the 1-based epoch
// whose evaluation the file's MetaMetrics describe.
const MetaEpoch = "epoch"

// validate checks every field of a saved training state against the run's
// hyper-parameters (after the data is loaded, so StepsPerEpoch is the one
// this data gives). A state that fails is never trained on: a hand-edited
// or damaged train_state would otherwise run negative epochs or overwrite
// best.safetensors.
func (st state) validate(hp HParams) error {
	bad := func(field string, value any, want string) error {
		return fmt.Errorf("%w: metadata %q: %s is %v, want %s", ErrResume, MetaTrainState, field, value, want)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	steps := hp.StepsPerEpoch
	switch {
	case st.Epoch < 0 || st.Epoch > hp.Epochs:
		return bad("epoch", st.Epoch, fmt.Sprintf("0..%d (the run's epochs)", hp.Epochs))
	// Step == steps is a run stopped after an epoch's last step and
	// before the epoch's end (evaluation, checkpoint): the resumed run
	// finds the epoch's data exhausted and goes on to its end.
	case st.Step < 0 || st.Step > steps || (st.Epoch == hp.Epochs && st.Step != 0):
		return bad("step", st.Step, fmt.Sprintf("0..%d within epoch %d (%d: its steps done, its end not yet), and 0 once all %d epochs are done", steps-1, st.Epoch, steps, hp.Epochs))
	case st.GlobalStep != st.Epoch*steps+st.Step:
		return bad("global_step", st.GlobalStep, fmt.Sprintf("%d (epoch %d × %d steps + step %d)", st.Epoch*steps+st.Step, st.Epoch, steps, st.Step))
	case st.BestEpoch < 0 || st.BestEpoch > st.Epoch:
		return bad("best_epoch", st.BestEpoch, fmt.Sprintf("0..%d (an epoch already done)", st.Epoch))
	case !finite(st.BestAP) || st.BestAP < 0 || st.BestAP > 1:
		return bad("best_ap", st.BestAP, "a number in 0..1")
	case st.BestEpoch == 0 && st.BestAP != 0:
		return bad("best_ap", st.BestAP, "0 while best_epoch is 0 (nothing evaluated yet)")
	case !finite(st.TrainSeconds) || st.TrainSeconds < 0:
		return bad("train_seconds", st.TrainSeconds, "a finite number >= 0")
	case !finite(st.WaitSeconds) || st.WaitSeconds < 0:
		return bad("wait_seconds", st.WaitSeconds, "a finite number >= 0")
	case st.Images < 0 || st.Images > int64(st.GlobalStep)*int64(hp.Batch):
		return bad("images", st.Images, fmt.Sprintf("0..%d (global step × batch %d)", int64(st.GlobalStep)*int64(hp.Batch), hp.Batch))
	case st.EvalPending && (st.Step != 0 || st.Epoch == 0 || hp.ValSplit == NoEval || hp.EvalEvery <= 0):
		return bad("eval_pending", st.EvalPending, "false unless a finished epoch of a run with evaluation awaits it")
	}
	return nil
}

// checkHParams checks the saved hyper-parameters against themselves and
// against the config stored in the same checkpoint, which must agree
// because both were written from one resolved run.
func checkHParams(hp HParams, cfg models.Config) error {
	bad := func(field string, value any, want string) error {
		return fmt.Errorf("%w: metadata %q: %s is %v, want %s", ErrResume, MetaHParams, field, value, want)
	}
	t := cfg.Train
	switch {
	case hp.Model != cfg.Name:
		return bad("model", fmt.Sprintf("%q", hp.Model), fmt.Sprintf("%q (the checkpoint's config)", cfg.Name))
	case hp.Epochs < 1 || hp.Epochs != t.Epochs:
		return bad("epochs", hp.Epochs, fmt.Sprintf("%d (config train.epochs)", t.Epochs))
	case hp.Batch < 1 || hp.Batch != t.Batch:
		return bad("batch", hp.Batch, fmt.Sprintf("%d (config train.batch)", t.Batch))
	case !(hp.LR > 0) || math.IsInf(hp.LR, 0) || hp.LR != t.LR:
		return bad("lr", hp.LR, fmt.Sprintf("%v (config train.lr)", t.LR))
	case hp.ImgSize != cfg.Input.Size:
		return bad("img_size", hp.ImgSize, fmt.Sprintf("%d (config input.size)", cfg.Input.Size))
	case hp.Optimizer != t.Optimizer || hp.Schedule != t.Schedule || hp.Augment != t.Augment:
		return bad("optimizer/schedule/augment", fmt.Sprintf("%s/%s/%v", hp.Optimizer, hp.Schedule, hp.Augment),
			fmt.Sprintf("%s/%s/%v (the config's)", t.Optimizer, t.Schedule, t.Augment))
	case hp.Momentum != t.Momentum || hp.WeightDecay != t.WeightDecay || hp.WarmupFactor != t.WarmupFactor || hp.GradClip != t.GradClip:
		return bad("momentum/weight_decay/warmup_factor/grad_clip", fmt.Sprintf("%v/%v/%v/%v", hp.Momentum, hp.WeightDecay, hp.WarmupFactor, hp.GradClip),
			fmt.Sprintf("%v/%v/%v/%v (the config's)", t.Momentum, t.WeightDecay, t.WarmupFactor, t.GradClip))
	case hp.EvalEvery < 0:
		return bad("eval_every", hp.EvalEvery, ">= 0")
	case hp.TrainSplit == "":
		return bad("train_split", `""`, "a split name")
	}
	return nil
}

// storedBest reads the metric best.safetensors in dir was saved with; ok is
// false when there is no such file. A file that exists but does not say its
// metric is an error: a resumed run must compare against it, never
// overwrite it blindly.
func storedBest(dir string) (ap float64, epoch int, ok bool, err error) {
	path := filepath.Join(dir, BestFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	meta, err := checkpoint.ReadMetadata(path)
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: %w", ErrResume, err)
	}
	var m evaluate.Metrics
	if err := json.Unmarshal([]byte(meta[MetaMetrics]), &m); err != nil || !(m.AP >= 0 && m.AP <= 1) {
		return 0, 0, false, fmt.Errorf("%w: %s: metadata %q does not hold the AP it was saved for (%v); move the file away to let the run pick a new best", ErrResume, path, MetaMetrics, err)
	}
	if e, err := json.Number(meta[MetaEpoch]).Int64(); err == nil {
		epoch = int(e)
	}
	return m.AP, epoch, true, nil
}
