package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnximport"
)

func init() { register(newImportCmd) }

// importOptions configures `gidedge import`.
type importOptions struct {
	ONNX      string
	Out       string
	ConfigOut string
	Take      string
	Outputs   string
	Config    string
	Name      string
	Size      int
	BGR       bool
	Mean, Std string
	UnfoldBN  bool
	Tolerance float64
	Seed      uint64
	Threads   int
	List      bool
	JSON      bool
}

func newImportCmd() *cobra.Command {
	o := importOptions{Take: onnximport.TakeBackbone, Tolerance: onnximport.DefaultTolerance}
	cmd := &cobra.Command{
		Use:   "import --onnx model.onnx --out model.safetensors --outputs C3,C4,C5[,P3,P4,P5]",
		Short: "Turn a pretrained ONNX backbone (and neck) into trainable gidedge modules",
		Long: `import reads a float ONNX graph and rebuilds the part up to the named tensors as
trainable engine modules: --take backbone (C3, C4, C5 at strides 8, 16, 32;
gidedge's FPN follows), neck (the part from C3–C5 to P3–P5, on the config's
own backbone) or all (both). It writes the weights (--out, a .safetensors
file) and a detector config (--config-out, default the same name with .json)
whose backbone and/or neck entries are the imported graph, with the head,
FPN levels, anchors and training defaults of --config. Train it like any
config: gidedge train --model model.json; gidedge distill --student model.json.

Translated ops: Conv (groups, dilation, bias), BatchNormalization, Relu,
LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Clip, Tanh (x·Sigmoid(x) becomes
SiLU), Add, Sub, Mul, Div, Concat, Split, Slice, Transpose, Reshape, Flatten,
MaxPool, AveragePool, GlobalAveragePool, ReduceMean (spatial), Pad, Resize and
Upsample (nearest, bilinear), Gemm, MatMul, Identity, Dropout, Constant, at
opsets up to 21. Anything else fails naming the node, its op type and the
opset. Reshape targets and resize sizes baked in for the exported batch and
image size are rewritten to follow the input.

Before writing, the imported modules run in the engine and ONNX Runtime runs
the original graph cut at the same tensors on one random image; every output
must agree within --tolerance (relative to its scale), and the modules must
also run at batch 2 on a larger image. --list prints the graph's feature maps
by stride, to choose --outputs.`,
		Example: `  gidedge import --onnx ../shared/models/nanodet_m_320.onnx --list
  gidedge import --onnx ../shared/models/nanodet_m_320.onnx --take all --outputs 528,743,846,861,867,873 \
      --bgr --mean 103.53,116.28,123.675 --std 57.375,57.12,58.395 --unfold-bn --out nanodet.safetensors
  gidedge import --onnx mobilenet.onnx --take backbone --outputs c3,c4,c5 --config fcos-student --out mnet.safetensors
  gidedge train --model nanodet.json --data ../shared/data/bccd --train-split trainval --val-split test --freeze-backbone-epochs 2 --out runs/nd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImport(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ONNX, "onnx", "", "float ONNX model to import (required)")
	f.StringVar(&o.Out, "out", "", "weights file to write, .safetensors (required unless --list)")
	f.StringVar(&o.ConfigOut, "config-out", "", "config file to write (default: --out with .json)")
	f.StringVar(&o.Take, "take", o.Take, "backbone, neck or all")
	f.StringVar(&o.Outputs, "outputs", "", "comma-separated tensor names, finest first: C3,C4,C5 (backbone) or C3,C4,C5,P3,P4,P5 (neck, all)")
	f.StringVar(&o.Config, "config", "", "named config or JSON file giving the head, FPN levels, anchors and training defaults (default: a gidedge export's own config, else retinanet-student)")
	f.StringVar(&o.Name, "name", "", "name of the new config (default: the --config name + \"-imported\")")
	f.IntVar(&o.Size, "size", 0, "input size of the new config and the traced size of a graph without a fixed one (default: the config's)")
	f.BoolVar(&o.BGR, "bgr", false, "the network reads BGR: reverse the first convolutions' input channels so it reads gidedge's RGB")
	f.StringVar(&o.Mean, "mean", "", "the network's input mean per channel in pixel units (0–255), in its channel order, e.g. 103.53,116.28,123.675")
	f.StringVar(&o.Std, "std", "", "the network's input std per channel in pixel units, in its channel order")
	f.BoolVar(&o.UnfoldBN, "unfold-bn", false, "give every convolution without a following BatchNormalization (folded batch norms) a fresh batch norm")
	f.Float64Var(&o.Tolerance, "tolerance", o.Tolerance, "largest allowed engine/ONNX Runtime difference, relative to each output's scale")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the check's random image")
	f.IntVar(&o.Threads, "threads", 0, "ONNX Runtime intra-op threads (0 lets it choose)")
	f.BoolVar(&o.List, "list", false, "print the graph's feature maps by stride and exit")
	f.BoolVar(&o.JSON, "json", false, "print the report as one JSON object")
	return withDevice(cmd)
}

// importReport is what --json prints.
type importReport struct {
	Weights string             `json:"weights"`
	Config  string             `json:"config"`
	Result  *onnximport.Result `json:"-"`
	Source  string             `json:"source"`
	Take    string             `json:"take"`
	Nodes   int                `json:"nodes"`
	Ops     map[string]int     `json:"ops"`
	Params  int                `json:"params"`
	Outputs []models.GraphPort `json:"outputs"`
	Parity  any                `json:"parity"`
	Worst   float64            `json:"worst_relative"`
	Trace   []int              `json:"traced_shape"`
	Resized []int              `json:"resized_shape"`
}

func runImport(o importOptions, stdout io.Writer) error {
	if o.ONNX == "" {
		return errors.New("import: --onnx is required (the model to import)")
	}
	if o.List {
		return listFeatureMaps(o, stdout)
	}
	if o.Out == "" {
		return errors.New("import: --out is required (the .safetensors weights file to write)")
	}
	opts := onnximport.Options{Take: o.Take, Name: o.Name, Size: o.Size, BGR: o.BGR, UnfoldBN: o.UnfoldBN,
		Tolerance: o.Tolerance, Seed: o.Seed, Threads: o.Threads}
	if o.Outputs != "" {
		for _, s := range strings.Split(o.Outputs, ",") {
			opts.Outputs = append(opts.Outputs, strings.TrimSpace(s))
		}
	}
	var err error
	if opts.Mean, err = triple("mean", o.Mean); err != nil {
		return err
	}
	if opts.Std, err = triple("std", o.Std); err != nil {
		return err
	}
	if opts.Std != nil && !(opts.Std[0] > 0 && opts.Std[1] > 0 && opts.Std[2] > 0) {
		return fmt.Errorf("import: --std %s: want three positive values", o.Std)
	}
	if o.Config != "" {
		cfg, err := models.Resolve(o.Config)
		if err != nil {
			return fmt.Errorf("import: --config: %w", err)
		}
		opts.Template = &cfg
	}
	configOut := o.ConfigOut
	if configOut == "" {
		configOut = onnximport.ConfigPath(o.Out)
	}
	res, err := onnximport.Import(o.ONNX, opts)
	if err != nil {
		if res != nil && len(res.Parity) > 0 && !o.JSON {
			printParity(stdout, res)
		}
		return err
	}
	if err := res.Write(o.Out, configOut); err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(importReport{Weights: o.Out, Config: configOut, Source: res.Source, Take: opts.Take,
			Nodes: res.Nodes, Ops: res.Ops, Params: res.Params, Outputs: res.Outputs, Parity: res.Parity,
			Worst: res.Worst, Trace: res.TraceShape, Resized: res.ResizedShape})
	}
	fmt.Fprintf(stdout, "imported %s: %d nodes (%s), %.3f M parameters\n", res.Source, res.Nodes, opCounts(res.Ops), float64(res.Params)/1e6)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "part\ttensor\tchannels\tstride")
	for i, p := range res.Outputs {
		part := "backbone C" + strconv.Itoa(3+i)
		if i >= 3 {
			part = "neck P" + strconv.Itoa(i)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", part, p.Name, p.Channels, p.Stride)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printParity(stdout, res)
	fmt.Fprintf(stdout, "also ran at batch %d and %dx%d: the imported network follows the input\n", res.ResizedShape[0], res.ResizedShape[2], res.ResizedShape[3])
	fmt.Fprintf(stdout, "wrote %s (weights) and %s (config %q, %s head)\n", o.Out, configOut, res.Config.Name, res.Config.Family)
	fmt.Fprintf(stdout, "next: gidedge train --model %s --data DIR --freeze-backbone-epochs 1 --out RUN\n", configOut)
	return nil
}

// printParity prints the engine/ONNX Runtime comparison.
func printParity(stdout io.Writer, res *onnximport.Result) {
	fmt.Fprintf(stdout, "parity with ONNX Runtime at %v (tolerance %.0e relative):\n", res.TraceShape, res.Tolerance)
	for _, p := range res.Parity {
		fmt.Fprintf(stdout, "  %-24s %v  max |diff| %.3g, scale %.3g, relative %.3g\n", p.Name, p.Shape, p.MaxAbsDiff, p.Scale, p.Relative)
	}
}

func opCounts(ops map[string]int) string {
	names := make([]string, 0, len(ops))
	for k := range ops {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return ops[names[i]] > ops[names[j]] || (ops[names[i]] == ops[names[j]] && names[i] < names[j])
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d %s", ops[n], n)
	}
	return strings.Join(parts, ", ")
}

// triple parses "a,b,c" into three floats; "" gives nil.
func triple(flag, s string) (*[3]float32, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("import: --%s %q: want three comma-separated values", flag, s)
	}
	var v [3]float32
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, fmt.Errorf("import: --%s %q: %v", flag, s, err)
		}
		v[i] = float32(f)
	}
	return &v, nil
}

func listFeatureMaps(o importOptions, stdout io.Writer) error {
	size := o.Size
	if size == 0 {
		size = 320
	}
	maps, err := onnximport.List(o.ONNX, size, o.Threads)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(maps)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "stride\tchannels\ttensor\top\tnode")
	for _, m := range maps {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\n", m.Stride, m.Channels, m.Name, m.Op, m.Index)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "(backbone outputs are usually the last map of each stride before the neck starts mixing strides; --outputs takes them finest first)")
	return nil
}
