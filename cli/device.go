package cli

import (
	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/engine/devices"
)

// withDevice gives a command that runs the engine its --device flag and
// selects the device before the command runs. Every engine command (train,
// distill, eval, predict, export, bench engine, demo) calls it, so the flag
// and its errors are the same everywhere.
func withDevice(cmd *cobra.Command) *cobra.Command {
	var name string
	cmd.Flags().StringVar(&name, "device", "", devices.Usage)
	next := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if _, err := devices.Select(name); err != nil {
			return err
		}
		if next != nil {
			return next(c, args)
		}
		return nil
	}
	return cmd
}
