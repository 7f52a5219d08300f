package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/demo"
)

func init() { register(newDemoCmd) }

type demoOptions struct {
	Out       string
	Quick     bool
	Force     bool
	Serve     bool
	ServeAddr string
	Workers   int
	Quiet     bool
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole product end to end on generated data and write a report",
		Long: `demo runs every gidedge step on data it generates itself, with no download:

  1 synth     a synthetic train/val/test set (gidedge data synth)
  2 teacher   train a large detector (gidedge train)
  3 baseline  train a small student alone
  4 gid       distill the same student from the teacher with GID (gidedge distill)
  5 evaluate  COCO mAP of all three on the test split (gidedge eval)
  6 export    the GID student to ONNX with a parity check, then INT8 with
              calibration on training images (gidedge export, gidedge quantize)
  7 latency   fp32 against INT8, in process and end to end through a server
              on 127.0.0.1 (gidedge bench latency, gidedge serve)
  8 report    REPORT.md and REPORT.html with tables, curves, a PR curve and
              test images with detections, plus the commands of each step

Everything goes into --out (runs/demo; runs/demo-quick with --quick). A stage
whose outputs exist and are unchanged (manifest.json keeps their hashes) is
skipped on the next run; Ctrl-C stops cleanly and running the same command
again continues where it stopped, training included. --force redoes every
stage. The default schedule takes about 15–20 minutes on a 2-core x86 CPU;
--quick checks every stage in a minute or two with tiny images and epochs.

--serve keeps a server with the INT8 model running on --addr after the
report is written and prints the URL of its viewer page; Ctrl-C stops it.`,
		Example: `  gidedge demo
  gidedge demo --quick
  gidedge demo --serve --addr 127.0.0.1:8080
  gidedge demo --out runs/demo2 --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "output folder (default runs/demo, or runs/demo-quick with --quick)")
	f.BoolVar(&o.Quick, "quick", false, "tiny data and schedules: a smoke test of every stage")
	f.BoolVar(&o.Force, "force", false, "redo every stage even when its outputs are valid")
	f.BoolVar(&o.Serve, "serve", false, "leave a server with the INT8 model running after the report (Ctrl-C stops it)")
	f.StringVar(&o.ServeAddr, "addr", demo.DefaultServeAddr, "listen address for --serve")
	f.IntVar(&o.Workers, "workers", 0, "data-loading goroutines (0: the loader's default)")
	f.BoolVar(&o.Quiet, "quiet", false, "no progress bars (stage lines still go to stdout)")
	return withDevice(cmd)
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := demo.Options{
		Out: o.Out, Quick: o.Quick, Force: o.Force, Serve: o.Serve, ServeAddr: o.ServeAddr,
		Workers: o.Workers, Log: stdout,
		OnServe: func(url string) { fmt.Fprintf(stdout, "viewer: %s\n", url) },
	}
	if !o.Quiet {
		opts.Progress = stderr
	}
	res, err := demo.Run(ctx, opts)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(stdout, "demo: stopped; run the same command again to continue")
			return nil
		}
		return err
	}
	fmt.Fprintf(stdout, "report: %s (HTML: %s)\n", res.Report, res.HTML)
	return nil
}
