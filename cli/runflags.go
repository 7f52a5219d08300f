package cli

import (
	"io"

	"github.com/spf13/pflag"

	"github.com/gidedge/gidedge/train"
)

// runFlags are the settings train and distill share: the data and run
// folders, the schedule overrides, resuming and the progress bar. The flags
// write straight into a train.Options, so a shared setting is one field in
// train.Options and one line in add.
type runFlags struct {
	Run train.Options
	// Quiet drops the progress bar (log lines still go to stdout).
	Quiet bool
}

// add declares the shared flags on f. model names the config whose
// defaults unset flags keep ("config", "student config").
func (r *runFlags) add(f *pflag.FlagSet, model string) {
	o := &r.Run
	f.StringVar(&o.Data, "data", "", "dataset folder, VOC or COCO")
	f.StringVar(&o.Out, "out", "", "run folder for checkpoints, metrics and plots")
	f.StringVar(&o.TrainSplit, "train-split", "", `split to train on (default "train")`)
	f.StringVar(&o.ValSplit, "val-split", "", `split to evaluate on (default "val"; "-" for none)`)
	f.IntVar(&o.Epochs, "epochs", 0, "epochs (default: the "+model+"'s)")
	f.IntVar(&o.Batch, "batch", 0, "images per step (default: the "+model+"'s)")
	f.Float64Var(&o.LR, "lr", 0, "peak learning rate (default: the "+model+"'s)")
	f.IntVar(&o.ImgSize, "img-size", 0, "square input size, a multiple of 32 (default: the "+model+"'s)")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of every random draw: weights, data order, augmentation")
	f.BoolVar(&o.Resume, "resume", false, "continue the run in --out from last.safetensors")
	f.IntVar(&o.EvalEvery, "eval-every", 1, "epochs between evaluations (the last epoch is always evaluated)")
	f.IntVar(&o.Workers, "workers", 0, "data-loading goroutines (default: up to 4)")
	f.IntVar(&o.CheckpointEvery, "save-every", 0, "also save last.safetensors every N steps within an epoch")
	f.StringVar(&o.Pretrained, "pretrained", "", `initialise the `+model+` from pretrained weights (gidedge import) or a checkpoint; "none" trains from scratch (default: the config's "pretrained" entry)`)
	f.IntVar(&o.FreezeBackboneEpochs, "freeze-backbone-epochs", 0, "keep the backbone (and an imported neck) fixed for the first N epochs")
	f.BoolVar(&r.Quiet, "quiet", false, "no progress bar")
}

// options returns the train.Options the flags describe, logging to stdout
// and drawing the progress bar on stderr unless Quiet.
func (r *runFlags) options(stdout, stderr io.Writer) train.Options {
	o := r.Run
	o.Log = stdout
	if !r.Quiet {
		o.Progress = stderr
	}
	return o
}
