package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

// evalCheckpointFlags are bound by the eval command each time it is built;
// Resolve reads them after parsing.
var evalCheckpointFlags struct {
	path    string
	imgSize int
	batch   int
}

func init() {
	registerEvalSource(evalSource{
		AddFlags: func(cmd *cobra.Command) {
			f := cmd.Flags()
			f.StringVar(&evalCheckpointFlags.path, "checkpoint", "", "score a checkpoint from gidedge train by running it on the split")
			f.IntVar(&evalCheckpointFlags.imgSize, "img-size", 0, "with --checkpoint: input size (default: the model's)")
			f.IntVar(&evalCheckpointFlags.batch, "batch", 8, "with --checkpoint: images per forward pass")
			cmd.Example += "\n  gidedge eval --checkpoint runs/rs/best.safetensors --data runs/synth --split test --json"
		},
		Resolve: func(ctx context.Context) (*evalMode, error) {
			f := evalCheckpointFlags
			if f.path == "" {
				return nil, nil
			}
			d, _, _, err := models.LoadCheckpoint(f.path)
			if err != nil {
				return nil, err
			}
			if len(d.Config.ClassNames) != d.Config.NumClasses {
				return nil, fmt.Errorf("eval: checkpoint %s has %d classes but %d class names", f.path, d.Config.NumClasses, len(d.Config.ClassNames))
			}
			return &evalMode{
				Name:    "checkpoint " + f.path,
				Classes: d.Config.ClassNames,
				Detect: func(ctx context.Context, ds *dataset.Dataset) ([]evaluate.Detection, error) {
					return train.Detect(ctx, d, ds, train.EvalOptions{ImgSize: f.imgSize, Batch: f.batch})
				},
			}, nil
		},
	})
}
