package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

func init() { register(newTrainCmd) }

type trainOptions struct {
	Model string
	runFlags
	DryRun bool
	// Classes is the class count a dry run assumes without --data.
	Classes int
}

func newTrainCmd() *cobra.Command {
	o := trainOptions{}
	cmd := &cobra.Command{
		Use:   "train --model CONFIG --data DIR --out RUN",
		Short: "Train a RetinaNet, FCOS or Faster R-CNN detector from scratch",
		Long: `train trains a detector from a named config (` + joinNames() + `)
or a config JSON file on a VOC or COCO dataset, evaluating on a validation
split every --eval-every epochs with COCO metrics.

The run folder gets config.json (the resolved config), hparams.json,
last.safetensors (full state, for --resume), best.safetensors (best
validation AP), metrics.jsonl and metrics.png. Ctrl-C saves last.safetensors
at the current step; --resume continues exactly where the run stopped, with
the same weights an uninterrupted run would have.

Flags left unset take the config's defaults (its "train" section and
input.size). --dry-run prints the model's size and compute and exits.`,
		Example: `  gidedge train --model retinanet-student --data runs/synth --out runs/rs
  gidedge train --model fcos-teacher --data ../shared/data/bccd --train-split trainval --val-split test --epochs 12 --out runs/ft
  gidedge train --model faster-rcnn-student --data runs/synth --out runs/frs
  gidedge train --out runs/rs --resume
  gidedge train --dry-run
  gidedge train --model retinanet-teacher --data ../shared/data/bccd --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "named config or config JSON file (required unless --resume or --dry-run)")
	o.add(f, "config")
	f.BoolVar(&o.DryRun, "dry-run", false, "print parameters and GFLOPs at the input size and exit (all named configs without --model)")
	f.IntVar(&o.Classes, "classes", 6, "class count a dry run assumes without --data")
	return withDevice(cmd)
}

func joinNames() string { return strings.Join(models.Names(), ", ") }

func runTrain(ctx context.Context, o trainOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.DryRun {
		return trainDryRun(o, stdout)
	}
	if o.Run.Out == "" {
		return errors.New("train: --out is required (the run folder)")
	}
	opts := o.options(stdout, stderr)
	if opts.Resume {
		if o.Model != "" {
			return errors.New("train: --resume takes the model from the run's checkpoint; drop --model")
		}
	} else {
		if o.Model == "" {
			return fmt.Errorf("train: --model is required: a named config (%s) or a config JSON file", joinNames())
		}
		if opts.Data == "" {
			return errors.New("train: --data is required (a VOC or COCO dataset folder)")
		}
		cfg, err := models.Resolve(o.Model)
		if err != nil {
			return err
		}
		opts.Config = cfg
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := train.Run(ctx, opts)
	return reportRun(stdout, "train", opts.Out, res, err)
}

// reportRun prints the outcome of a training or distillation run, and how to
// continue one that was interrupted (an interrupt is not an error).
func reportRun(stdout io.Writer, command, out string, res *train.Result, err error) error {
	if res != nil && res.Interrupted {
		fmt.Fprintf(stdout, "interrupted after %d steps; continue with: gidedge %s --out %s --resume\n", res.Steps, command, out)
		if errors.Is(err, context.Canceled) {
			return nil
		}
	}
	if err != nil || res == nil || res.Interrupted {
		return err
	}
	fmt.Fprintf(stdout, "train time %s, %.1f images/s, step %.0f ms (data wait %.1f ms)\n",
		res.TrainTime.Round(1e9), res.ImagesPerSec, res.StepTime.Seconds()*1000, res.DataWait.Seconds()*1000)
	if res.Final != nil {
		fmt.Fprintf(stdout, "final %s: AP %.4f AP50 %.4f AP75 %.4f\n", res.HParams.ValSplit, res.Final.AP, res.Final.AP50, res.Final.AP75)
		for _, c := range res.Final.PerClass {
			fmt.Fprintf(stdout, "  %-16s AP %.4f AP50 %.4f\n", c.Name, c.AP, c.AP50)
		}
	}
	fmt.Fprintf(stdout, "checkpoints: %s", res.Last)
	if res.Best != "" {
		fmt.Fprintf(stdout, ", %s (AP %.4f, epoch %d)", res.Best, res.BestAP, res.BestEpoch)
	}
	fmt.Fprintln(stdout)
	return nil
}

// trainDryRun prints the size and compute of one config, or of every
// named config.
func trainDryRun(o trainOptions, stdout io.Writer) error {
	names := models.Names()
	if o.Model != "" {
		names = []string{o.Model}
	}
	var classes []string
	source := fmt.Sprintf("%d classes assumed; give --data to use a dataset's", o.Classes)
	if o.Run.Data != "" {
		split := o.Run.TrainSplit
		if split == "" {
			split = "train"
		}
		ds, err := dataset.Load(o.Run.Data, split)
		if err != nil {
			return err
		}
		if err := ds.WriteReport(stdout, ""); err != nil {
			return err
		}
		classes = ds.ClassNames()
		source = fmt.Sprintf("%d classes of %s", len(classes), o.Run.Data)
	} else {
		if o.Classes <= 0 {
			return fmt.Errorf("train: --classes %d, want ≥ 1", o.Classes)
		}
		for i := range o.Classes {
			classes = append(classes, fmt.Sprintf("class%d", i))
		}
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tfamily\tbackbone\tinput\tparams (M)\tGMACs\tGFLOPs\t")
	for _, n := range names {
		cfg, err := models.Resolve(n)
		if err != nil {
			return err
		}
		size := cfg.Input.Size
		if o.Run.ImgSize > 0 {
			size = o.Run.ImgSize
		}
		d, err := models.New(cfg.WithClasses(classes), o.Run.Seed)
		if err != nil {
			return err
		}
		c := d.Cost(size, size)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t\n", cfg.Name, cfg.Family, cfg.Backbone.Type, size, float64(c.Params)/1e6, float64(c.MACs)/1e9, c.GFLOPs())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "(%s; GFLOPs = 2 × multiply-accumulates of every convolution)\n", source)
	return nil
}
