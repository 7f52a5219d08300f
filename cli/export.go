package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/export"
)

func init() { register(newExportCmd) }

// exportOptions configures `gidedge export`.
type exportOptions struct {
	Checkpoint   string
	Out          string
	Opset        int
	Outputs      string
	WithFeatures bool
	Batch        string // "dynamic" or a positive size
	Tolerance    float64
	ParityBatch  int
	Threads      int
	JSON         bool
}

func newExportCmd() *cobra.Command {
	opts := exportOptions{Opset: export.DefaultOpset, Outputs: "decoded", Batch: "dynamic", Tolerance: export.DefaultTolerance}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export a gidedge checkpoint to ONNX, checked against the engine",
		Long: `Writes a gidedge detector (a training checkpoint) as a standard ONNX graph that
ONNX Runtime and TensorRT run: batch norms folded into the convolutions, input
"images" [N,3,H,W] float32 with a dynamic batch, and everything a server needs
(class names, input size and normalisation, resize mode, head, anchors, score
and NMS defaults) in the file's metadata.

--outputs decoded (the default) returns "boxes" [N,R,4] (x1,y1,x2,y2 in input
pixels) and "scores" [N,R,K] (sigmoid probabilities), ready for NMS; FCOS adds
"centerness" [N,R,1]. --outputs raw returns the head maps of every pyramid level,
"cls_logits_<i>", "box_reg_<i>" (and FCOS "centerness_<i>"). --with-features
also returns the pyramid features "feature_<i>" and the raw head maps, so the
export can act as a distillation teacher.

A two-stage (Faster R-CNN) export holds the whole pipeline in standard ops
(RPN, TopK, NonMaxSuppression, Gather, RoiAlign, the box head) and runs one
image: "scores" [1,P,K] (softmax, background dropped) and "boxes" [1,P,K,4]
(class-specific) for its P proposals; it needs opset 16 or newer. Its raw
outputs are the RPN's maps.

Before writing, the same inputs run through the engine and through ONNX
Runtime; if any output differs by more than the tolerance (relative to that
output's largest value) the command fails and writes nothing. The figures are
printed either way.`,
		Example: `  gidedge export --checkpoint runs/student/best.safetensors --out student.onnx
  gidedge export --checkpoint runs/teacher/best.safetensors --out teacher.onnx --with-features
  gidedge export --checkpoint best.safetensors --out raw.onnx --outputs raw --opset 13 --batch 1
  gidedge export --checkpoint best.safetensors --out model.onnx --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExport(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Checkpoint, "checkpoint", "", "gidedge checkpoint (.safetensors written by gidedge train or distill) (required)")
	f.StringVar(&opts.Out, "out", "", "ONNX file to write (required)")
	f.IntVar(&opts.Opset, "opset", opts.Opset, fmt.Sprintf("ONNX opset, %d to %d", export.MinOpset, export.MaxOpset))
	f.StringVar(&opts.Outputs, "outputs", opts.Outputs, "decoded (boxes and scores) or raw (per-level head outputs)")
	f.BoolVar(&opts.WithFeatures, "with-features", false, "also output the FPN features and raw head outputs (for a GID teacher)")
	f.StringVar(&opts.Batch, "batch", opts.Batch, "batch dimension: dynamic, or a fixed size such as 1")
	f.Float64Var(&opts.Tolerance, "tolerance", opts.Tolerance, "largest allowed engine/ONNX Runtime difference, relative to each output's scale")
	f.IntVar(&opts.ParityBatch, "parity-images", 0, "images in the parity check (default 2, or the fixed batch)")
	f.IntVar(&opts.Threads, "threads", 0, "ONNX Runtime intra-op threads for the parity check (0 lets it choose)")
	f.BoolVar(&opts.JSON, "json", false, "print the report as one JSON object")
	return withDevice(cmd)
}

// runExport runs `gidedge export` with parsed options. The report is printed
// even when the parity check fails, so the figures explain the error.
func runExport(ctx context.Context, opts exportOptions, stdout io.Writer) error {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if opts.Checkpoint == "" {
		return fmt.Errorf("export: --checkpoint is required")
	}
	if opts.Out == "" {
		return fmt.Errorf("export: --out is required")
	}
	batch := 0
	if b := strings.ToLower(strings.TrimSpace(opts.Batch)); b != "dynamic" && b != "" {
		n, err := strconv.Atoi(b)
		if err != nil || n <= 0 {
			return fmt.Errorf("export: --batch %q, want \"dynamic\" or a positive integer", opts.Batch)
		}
		batch = n
	}
	rep, err := export.ExportCheckpoint(opts.Checkpoint, opts.Out, export.Options{
		Opset: opts.Opset, Outputs: strings.ToLower(opts.Outputs), WithFeatures: opts.WithFeatures,
		Batch: batch, Tolerance: opts.Tolerance, ParityBatch: opts.ParityBatch, Threads: opts.Threads,
	})
	if rep != nil {
		var werr error
		if opts.JSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			werr = enc.Encode(rep)
		} else {
			werr = rep.WriteText(stdout)
		}
		if err == nil && werr != nil {
			err = fmt.Errorf("export: write report: %w", werr)
		}
	}
	return err
}
