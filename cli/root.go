// Package cli builds the gidedge command tree. Each subcommand lives in its
// own file with an options struct, a constructor that returns the cobra
// command, and a run function tests can call without parsing flags.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/internal/buildinfo"
)

// ExitError carries a specific exit code out of a command (doctor uses it).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

type constructor func() *cobra.Command

var (
	topLevel  []constructor
	benchSubs []constructor
	dataSubs  []constructor
)

// register adds a top-level subcommand; files call it from init.
func register(c constructor) { topLevel = append(topLevel, c) }

// registerBench adds a subcommand under "gidedge bench".
func registerBench(c constructor) { benchSubs = append(benchSubs, c) }

// registerData adds a subcommand under "gidedge data".
func registerData(c constructor) { dataSubs = append(dataSubs, c) }

// NewRoot builds the full command tree with the given output streams.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "gidedge",
		Short: "Distill, export, quantize and serve object detectors for the edge",
		Long: `gidedge trains a small, fast object detector from a large accurate one with
General Instance Distillation (GID), exports it to ONNX, quantizes it to INT8
and serves it over REST on Jetson-class devices, without a Python stack.`,
		Example: `  gidedge doctor
  gidedge data synth --out runs/synth --images 200
  gidedge bench engine --json`,
		Version:       buildinfo.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("gidedge {{.Version}}\n")

	bench := &cobra.Command{
		Use:   "bench",
		Short: "Measure engine speed and model latency",
	}
	data := &cobra.Command{
		Use:   "data",
		Short: "Create and inspect detection datasets",
	}
	addAll(bench, benchSubs)
	addAll(data, dataSubs)
	if bench.HasSubCommands() {
		root.AddCommand(bench)
	}
	if data.HasSubCommands() {
		root.AddCommand(data)
	}
	addAll(root, topLevel)
	return root
}

func addAll(parent *cobra.Command, cs []constructor) {
	cmds := make([]*cobra.Command, 0, len(cs))
	for _, c := range cs {
		cmds = append(cmds, c())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	parent.AddCommand(cmds...)
}

// Execute runs gidedge with os.Args and returns the process exit code.
func Execute() int {
	root := NewRoot(os.Stdout, os.Stderr)
	if err := run(root); err != nil {
		fmt.Fprintln(os.Stderr, "gidedge:", err)
		var exit *ExitError
		if errors.As(err, &exit) {
			return exit.Code
		}
		return 1
	}
	return 0
}

// run executes the command tree inside gidedge's one recover point:
// engine.Guard turns the typed panic of a programmer error anywhere below
// (a shape mismatch in the engine, a box list of the wrong length, a broken
// invariant of the ONNX graph builder) into the command's error, so the
// user reads one line naming the op and the shapes. Nothing else recovers;
// errors users cause are returned, never panicked, and runtime errors keep
// their stack trace.
func run(root *cobra.Command) error { return engine.Guard(root.Execute) }
