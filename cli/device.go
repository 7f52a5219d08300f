package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/engine/devices"
)

// tf32Switch is a device whose matrix products may use TF32 (cuda).
type tf32Switch interface{ SetTF32(on bool) error }

// withDevice gives a command that runs the engine its --device and --tf32
// flags and selects the device before the command runs. Every engine
// command (train, distill, eval, predict, export, bench engine, demo)
// calls it, so the flags and their errors are the same everywhere.
func withDevice(cmd *cobra.Command) *cobra.Command {
	var name string
	var tf32 bool
	cmd.Flags().StringVar(&name, "device", "", devices.Usage)
	cmd.Flags().BoolVar(&tf32, "tf32", false, "with --device cuda: let GEMMs and convolutions use TF32 tensor cores (faster, about 10 mantissa bits; default $GIDEDGE_CUDA_TF32)")
	next := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		dev, err := devices.Select(name)
		if err != nil {
			return err
		}
		if c.Flags().Changed("tf32") {
			s, ok := dev.(tf32Switch)
			if !ok {
				return errors.New("--tf32 applies to --device cuda only (device " + dev.Name() + " computes in FP32)")
			}
			if err := s.SetTF32(tf32); err != nil {
				return err
			}
		}
		if next != nil {
			return next(c, args)
		}
		return nil
	}
	return cmd
}
