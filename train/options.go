package train

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
)

// ErrDiverged is returned when the loss or a gradient stops being finite.
var ErrDiverged = errors.New("train: training diverged")

// ErrResume is wrapped by errors that keep a run from resuming: no
// last.safetensors, or options that contradict the run being resumed.
var ErrResume = errors.New("train: cannot resume")

// NoEval as Options.ValSplit turns periodic evaluation off.
const NoEval = "-"

// NoPretrained as Options.Pretrained trains from scratch even when the
// config names pretrained weights.
const NoPretrained = "none"

// Options configures Run. Zero values take the model config's defaults
// (Config.Train, Config.Input.Size) or the documented default.
type Options struct {
	// Config is the detector to train, e.g. from models.Resolve. Its class
	// list is taken from the training data when NumClasses is 0. Ignored on
	// Resume, where the run's own config is used.
	Config models.Config
	// Data is the dataset folder (VOC or COCO, see dataset.Load).
	Data string
	// TrainSplit (default "train") is trained on; ValSplit (default "val")
	// is evaluated every EvalEvery epochs and picks best.safetensors;
	// NoEval turns evaluation off.
	TrainSplit, ValSplit string
	// Out is the run folder; created if missing.
	Out string

	Epochs  int
	Batch   int
	LR      float64
	ImgSize int
	// Seed drives weight initialisation, data order and augmentation.
	Seed uint64
	// Resume continues the run in Out from last.safetensors. Options that
	// are set (non-zero) must agree with the run's.
	Resume bool
	// EvalEvery is the number of epochs between evaluations (default 1);
	// the last epoch is always evaluated.
	EvalEvery int
	// Workers is the number of data-loading goroutines (default: loader's).
	Workers int
	// LogEvery is the number of steps averaged into one metrics.jsonl
	// record (default 10).
	LogEvery int
	// CheckpointEvery saves last.safetensors every so many steps within an
	// epoch (0: at the end of each epoch and on interruption only).
	CheckpointEvery int
	// StopAfter stops, as an interruption does, once this many steps have
	// been done in total (0: no limit). Tests and schedulers use it.
	StopAfter int

	// Progress receives the progress bar (nil: none); Log receives one
	// line per evaluation and the summary (nil: none).
	Progress io.Writer
	Log      io.Writer

	// Pretrained initialises the fresh detector's tensors from a pretrained
	// file or checkpoint (models.LoadPretrained): "" takes the config's
	// "pretrained" entry, NoPretrained none (training from scratch), any
	// other value is a path. Ignored on Resume.
	Pretrained string
	// FreezeBackboneEpochs keeps the backbone (and an imported neck) fixed
	// for the first so many epochs: no gradients, batch norms on running
	// statistics (models.Detector.SetFrozen).
	FreezeBackboneEpochs int

	// Model, when set, is trained instead of a fresh models.New(Config,
	// Seed) (e.g. a student initialised from other weights). Its config
	// replaces Config.
	Model *models.Detector
	// Extra is a module trained together with the detector (distillation
	// adaptation layers); saved under "extra." in last.safetensors.
	Extra nn.Module
	// ExtraLoss, when set, is called every step after the detector's
	// forward pass; the tensor it returns (nil for none) is added to the
	// detection loss and its parts are logged next to the detector's.
	ExtraLoss func(s *StepContext) (*engine.Tensor, map[string]float32, error)
}

// StepContext is what ExtraLoss sees of a training step.
type StepContext struct {
	Epoch, Step, GlobalStep int
	Batch                   *dataset.Batch
	// Input is the batch's image tensor [N, 3, H, W] (no gradient).
	Input *engine.Tensor
	Model *models.Detector
	// Outputs are the detector's outputs for Input, inside the autograd graph.
	Outputs *models.Outputs
}

// HParams are the resolved settings of a run, saved in hparams.json and in
// every last.safetensors.
type HParams struct {
	Model        string  `json:"model"`
	Data         string  `json:"data"`
	TrainSplit   string  `json:"train_split"`
	ValSplit     string  `json:"val_split"`
	Epochs       int     `json:"epochs"`
	Batch        int     `json:"batch"`
	LR           float64 `json:"lr"`
	ImgSize      int     `json:"img_size"`
	Seed         uint64  `json:"seed"`
	Optimizer    string  `json:"optimizer"`
	Momentum     float64 `json:"momentum"`
	WeightDecay  float64 `json:"weight_decay"`
	Schedule     string  `json:"schedule"`
	WarmupSteps  int     `json:"warmup_steps"`
	WarmupFactor float64 `json:"warmup_factor"`
	GradClip     float64 `json:"grad_clip"`
	Augment      bool    `json:"augment"`
	EvalEvery    int     `json:"eval_every"`
	Workers      int     `json:"workers"`
	// LogEvery and CheckpointEvery are kept so a resumed run writes its
	// rows and checkpoints where the first leg did; they may be changed on
	// resume, as they do not touch the weights.
	LogEvery        int     `json:"log_every"`
	CheckpointEvery int     `json:"checkpoint_every"`
	TrainImages     int     `json:"train_images"`
	ValImages       int     `json:"val_images"`
	StepsPerEpoch   int     `json:"steps_per_epoch"`
	TotalSteps      int     `json:"total_steps"`
	Params          int     `json:"params"`
	GFLOPs          float64 `json:"gflops"`
	// Pretrained is the file the detector was initialised from ("" for
	// none) and PretrainedTensors how many tensors it set.
	Pretrained           string `json:"pretrained,omitempty"`
	PretrainedTensors    int    `json:"pretrained_tensors,omitempty"`
	FreezeBackboneEpochs int    `json:"freeze_backbone_epochs,omitempty"`
}

// resolve fills defaults from the config into cfg.Train and cfg.Input and
// returns the hyper-parameters (dataset-dependent fields are set later).
func resolve(opts *Options, cfg *models.Config) HParams {
	if opts.TrainSplit == "" {
		opts.TrainSplit = "train"
	}
	if opts.ValSplit == "" {
		opts.ValSplit = "val"
	}
	if opts.EvalEvery == 0 {
		opts.EvalEvery = 1
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10
	}
	if opts.Epochs > 0 {
		cfg.Train.Epochs = opts.Epochs
	}
	if opts.Batch > 0 {
		cfg.Train.Batch = opts.Batch
	}
	if opts.LR > 0 {
		cfg.Train.LR = opts.LR
	}
	if opts.ImgSize > 0 {
		cfg.Input.Size = opts.ImgSize
	}
	t := cfg.Train
	return HParams{
		Model: cfg.Name, Data: opts.Data, TrainSplit: opts.TrainSplit, ValSplit: opts.ValSplit,
		Epochs: t.Epochs, Batch: t.Batch, LR: t.LR, ImgSize: cfg.Input.Size, Seed: opts.Seed,
		Optimizer: t.Optimizer, Momentum: t.Momentum, WeightDecay: t.WeightDecay, Schedule: t.Schedule,
		WarmupSteps: t.WarmupSteps, WarmupFactor: t.WarmupFactor, GradClip: t.GradClip, Augment: t.Augment,
		EvalEvery: opts.EvalEvery, Workers: opts.Workers, LogEvery: opts.LogEvery, CheckpointEvery: opts.CheckpointEvery,
		FreezeBackboneEpochs: opts.FreezeBackboneEpochs,
	}
}

// checkResumeOptions reports the first option set for a resume that
// contradicts the run's saved hyper-parameters.
func checkResumeOptions(opts Options, h HParams) error {
	type pair struct {
		flag       string
		set, equal bool
		given, was any
	}
	checks := []pair{
		{"epochs", opts.Epochs > 0, opts.Epochs == h.Epochs, opts.Epochs, h.Epochs},
		{"batch", opts.Batch > 0, opts.Batch == h.Batch, opts.Batch, h.Batch},
		{"lr", opts.LR > 0, math.Abs(opts.LR-h.LR) < 1e-12, opts.LR, h.LR},
		{"img-size", opts.ImgSize > 0, opts.ImgSize == h.ImgSize, opts.ImgSize, h.ImgSize},
		{"seed", opts.Seed != 0, opts.Seed == h.Seed, opts.Seed, h.Seed},
		{"train-split", opts.TrainSplit != "", opts.TrainSplit == h.TrainSplit, opts.TrainSplit, h.TrainSplit},
		{"freeze-backbone-epochs", opts.FreezeBackboneEpochs > 0, opts.FreezeBackboneEpochs == h.FreezeBackboneEpochs, opts.FreezeBackboneEpochs, h.FreezeBackboneEpochs},
	}
	for _, c := range checks {
		if c.set && !c.equal {
			return fmt.Errorf("%w: --%s %v differs from the run's %v (an exact resume keeps every setting; start a new run to change it)", ErrResume, c.flag, c.given, c.was)
		}
	}
	return nil
}
