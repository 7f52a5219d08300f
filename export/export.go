package export

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// Opset range and defaults.
const (
	// MinOpset is the oldest opset written: Upsample-9 and attribute-style
	// Clip and Slice below 10/11 are handled.
	MinOpset = 9
	// MaxOpset is the newest opset the exporter is tested with (ONNX Runtime
	// 1.30 runs it; TensorRT 10 parses up to 20-22 depending on the release).
	MaxOpset     = 21
	DefaultOpset = 17
	// DefaultTolerance bounds each output's largest absolute difference
	// between engine and ONNX Runtime, relative to the output's scale.
	DefaultTolerance = 1e-4
	// DefaultParityBatch is the number of images the parity check runs when
	// the batch is dynamic.
	DefaultParityBatch = 2
)

// ErrParity is wrapped by the error of an export whose ONNX outputs differ
// from the engine's by more than the tolerance.
var ErrParity = errors.New("export: parity check failed")

// Options configure an export. The zero value is a valid default: opset 17,
// decoded outputs, no features, dynamic batch, tolerance 1e-4.
type Options struct {
	Opset int
	// Outputs is "decoded" (boxes and scores) or "raw" (per-level head maps).
	Outputs string
	// WithFeatures also outputs the pyramid features and the raw head maps.
	WithFeatures bool
	// Batch fixes the batch dimension; 0 leaves it dynamic ("batch").
	Batch int
	// Tolerance is the parity bound, relative to each output's scale.
	Tolerance float64
	// ParityBatch is how many images the parity check runs (0: Batch when
	// fixed, else DefaultParityBatch).
	ParityBatch int
	// Seed draws the parity input.
	Seed uint64
	// Threads caps ONNX Runtime's intra-op threads in the parity check
	// (0 lets it choose).
	Threads int
}

// withDefaults fills zero fields and validates the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Opset == 0 {
		o.Opset = DefaultOpset
	}
	if o.Opset < MinOpset || o.Opset > MaxOpset {
		return o, fmt.Errorf("export: opset %d, want %d to %d", o.Opset, MinOpset, MaxOpset)
	}
	if o.Outputs == "" {
		o.Outputs = infer.OutputsDecoded
	}
	if o.Outputs != infer.OutputsDecoded && o.Outputs != infer.OutputsRaw {
		return o, fmt.Errorf("export: outputs %q, want %q or %q", o.Outputs, infer.OutputsDecoded, infer.OutputsRaw)
	}
	if o.Batch < 0 {
		return o, fmt.Errorf("export: batch %d, want 0 (dynamic) or a positive size", o.Batch)
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	if !(o.Tolerance > 0) {
		return o, fmt.Errorf("export: parity tolerance %v, want > 0", o.Tolerance)
	}
	switch {
	case o.ParityBatch < 0:
		return o, fmt.Errorf("export: parity batch %d, want ≥ 1", o.ParityBatch)
	case o.Batch > 0 && o.ParityBatch != 0 && o.ParityBatch != o.Batch:
		return o, fmt.Errorf("export: parity batch %d with a fixed batch of %d, want the same", o.ParityBatch, o.Batch)
	case o.Batch > 0:
		o.ParityBatch = o.Batch
	case o.ParityBatch == 0:
		o.ParityBatch = DefaultParityBatch
	}
	if o.Threads < 0 {
		return o, fmt.Errorf("export: threads %d, want ≥ 0", o.Threads)
	}
	return o, nil
}

// Output describes one graph output.
type Output struct {
	Name string `json:"name"`
	// Shape has -1 for the dynamic batch.
	Shape []int64 `json:"shape"`
}

// Model is a built ONNX graph with what went into it.
type Model struct {
	Proto   *onnxpb.ModelProto
	Info    infer.ModelInfo
	Input   Output
	Outputs []Output
	// FoldedBN counts batch norms merged into convolutions; Params counts
	// the learnt weights written.
	FoldedBN, Params int
}

// Build turns a detector into an ONNX model without checking parity or
// writing anything. The input size is the config's input.size.
func Build(d *models.Detector, opts Options) (*Model, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg := d.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("export: config %q: %w", cfg.Name, err)
	}
	if cfg.NumClasses <= 0 {
		return nil, fmt.Errorf("export: config %q: num_classes %d, want ≥ 1", cfg.Name, cfg.NumClasses)
	}
	info, meta, err := metadata(cfg, opts.Outputs)
	if err != nil {
		return nil, err
	}
	if cfg.TwoStage() {
		// Proposals vary in number from image to image: the graph runs
		// one image.
		if opts.Batch > 1 {
			return nil, fmt.Errorf("export: the two-stage detector %q exports with a batch of 1 (its proposals vary per image), not %d", cfg.Name, opts.Batch)
		}
		opts.Batch, opts.ParityBatch = 1, 1
	}
	size := cfg.Input.Size
	g := newGraph(int64(opts.Opset))
	w := &walker{g: g, size: size}
	in := g.reserve(InputName)
	heads, err := w.detector(d, in)
	if err != nil {
		return nil, err
	}
	p := d.Priors(size, size)
	k, a := cfg.NumClasses, cfg.NumAnchors()
	shapes := map[string][]int{}
	for i, lv := range p.Levels {
		shapes[heads.features[i]] = []int{0, cfg.FPN.Channels, lv.H, lv.W}
		shapes[heads.cls[i]] = []int{0, a * cfg.HeadClasses(), lv.H, lv.W}
		shapes[heads.reg[i]] = []int{0, a * 4, lv.H, lv.W}
		if i < len(heads.ctr) {
			shapes[heads.ctr[i]] = []int{0, 1, lv.H, lv.W}
		}
	}
	var outputs []string
	if opts.Outputs == infer.OutputsDecoded {
		var dec []string
		if cfg.TwoStage() {
			dec, err = w.twoStage(d, heads, size)
		} else {
			dec, err = w.decode(d, heads, size, size)
		}
		if err != nil {
			return nil, err
		}
		r := p.Len()
		shapes[BoxesName] = []int{0, r, 4}
		shapes[ScoresName] = []int{0, r, k}
		shapes[CenternessName] = []int{0, r, 1}
		outputs = dec
		if opts.WithFeatures {
			outputs = append(outputs, FeatureNames(cfg)...)
			outputs = append(outputs, RawNames(cfg)...)
		}
	} else {
		outputs = RawNames(cfg)
		if opts.WithFeatures {
			outputs = append(outputs, FeatureNames(cfg)...)
		}
	}
	m := &Model{Info: info, FoldedBN: g.folded, Params: g.params}
	m.Input = Output{Name: in, Shape: batchShape(opts.Batch, 0, 3, size, size)}
	var outInfos []*onnxpb.ValueInfoProto
	for _, name := range outputs {
		s, ok := shapes[name]
		if !ok || !g.used[name] {
			return nil, fmt.Errorf("export: output %q was not produced by the graph", name)
		}
		if cfg.TwoStage() && (name == BoxesName || name == ScoresName) {
			// [1, P, K] and [1, P, K, 4], P the dynamic proposal count.
			dims := []int{k}
			if name == BoxesName {
				dims = append(dims, 4)
			}
			outInfos = append(outInfos, twoStageValueInfo(name, dims...))
			shape := []int64{1, -1}
			for _, v := range dims {
				shape = append(shape, int64(v))
			}
			m.Outputs = append(m.Outputs, Output{Name: name, Shape: shape})
			continue
		}
		outInfos = append(outInfos, valueInfo(name, opts.Batch, s...))
		m.Outputs = append(m.Outputs, Output{Name: name, Shape: batchShape(opts.Batch, s...)})
	}
	graph := g.graphProto(cfg.Name, valueInfo(in, opts.Batch, 0, 3, size, size), outInfos)
	graph.DocString = fmt.Sprintf("gidedge %s detector %q (%s backbone, %d classes), %s outputs", cfg.Family, cfg.Name, cfg.Backbone.Type, k, opts.Outputs)
	proto := &onnxpb.ModelProto{
		IrVersion:       irVersion(int64(opts.Opset)),
		ProducerName:    "gidedge",
		ProducerVersion: buildinfo.Version,
		Domain:          "ai.gidedge",
		ModelVersion:    1,
		DocString:       graph.DocString,
		Graph:           graph,
	}
	onnxgraph.SetOpset(proto, int64(opts.Opset))
	for _, kv := range meta {
		onnxgraph.SetMetadata(proto, kv[0], kv[1])
	}
	if err := onnxgraph.TopoSort(graph); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	m.Proto = proto
	return m, nil
}

// batchShape returns dims with dimension 0 set to the batch (-1 when dynamic).
func batchShape(batch int, dims ...int) []int64 {
	out := make([]int64, len(dims))
	for i, d := range dims {
		out[i] = int64(d)
	}
	if batch == 0 {
		out[0] = -1
	} else {
		out[0] = int64(batch)
	}
	return out
}

// Report is what an export did.
type Report struct {
	Path string `json:"path"`
	// Written is true once the file is in place (parity passed).
	Written    bool     `json:"written"`
	Bytes      int      `json:"bytes"`
	Config     string   `json:"config"`
	Family     string   `json:"family"`
	Backbone   string   `json:"backbone"`
	Classes    int      `json:"classes"`
	Opset      int      `json:"opset"`
	IRVersion  int64    `json:"ir_version"`
	OutputMode string   `json:"outputs"`
	Input      Output   `json:"input"`
	Outputs    []Output `json:"graph_outputs"`
	Nodes      int      `json:"nodes"`
	Params     int      `json:"params"`
	FoldedBN   int      `json:"folded_batch_norms"`
	Parity     *Parity  `json:"parity"`
}

// testHookBeforeParity, when set by a test, runs between building the graph
// and checking parity (to make the check fail on purpose).
var testHookBeforeParity func(d *models.Detector)

// Export builds the ONNX model of d, checks its parity with the engine and
// writes it atomically to out. When parity fails the error wraps ErrParity,
// the report still carries the figures, and nothing is written.
func Export(d *models.Detector, out string, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkOutPath(out); err != nil {
		return nil, err
	}
	m, err := Build(d, opts)
	if err != nil {
		return nil, err
	}
	data, err := onnxgraph.Marshal(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	rep := &Report{
		Path: out, Bytes: len(data), Config: d.Config.Name, Family: d.Config.Family,
		Backbone: d.Config.Backbone.Type, Classes: d.Config.NumClasses,
		Opset: opts.Opset, IRVersion: m.Proto.IrVersion, OutputMode: opts.Outputs,
		Input: m.Input, Outputs: m.Outputs, Nodes: len(m.Proto.Graph.Node),
		Params: m.Params, FoldedBN: m.FoldedBN,
	}
	if testHookBeforeParity != nil {
		testHookBeforeParity(d)
	}
	rep.Parity, err = CheckParity(d, data, m.OutputNames(), opts)
	if err != nil {
		return rep, err
	}
	if err := onnxgraph.WriteFileAtomic(out, data); err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	rep.Written = true
	return rep, nil
}

// ExportCheckpoint loads a gidedge checkpoint (models.LoadCheckpoint) and
// exports its detector to out.
func ExportCheckpoint(checkpoint, out string, opts Options) (*Report, error) {
	if checkpoint == "" {
		return nil, fmt.Errorf("export: no checkpoint given")
	}
	if _, err := opts.withDefaults(); err != nil {
		return nil, err
	}
	st, err := os.Stat(checkpoint)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("export: checkpoint %s does not exist (%w)", checkpoint, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("export: checkpoint %s: %w", checkpoint, err)
	case st.IsDir():
		return nil, fmt.Errorf("export: checkpoint %s is a directory, want a .safetensors file", checkpoint)
	}
	if same, _ := samePath(checkpoint, out); same {
		return nil, fmt.Errorf("export: output %s is the checkpoint itself, want a new .onnx path", out)
	}
	if err := checkOutPath(out); err != nil {
		return nil, err
	}
	d, _, _, err := models.LoadCheckpoint(checkpoint)
	if err != nil {
		// models' errors name the file and the tensor or field at fault.
		return nil, fmt.Errorf("export: %w", err)
	}
	return Export(d, out, opts)
}

// checkOutPath fails early, before any work, when out cannot be written.
func checkOutPath(out string) error {
	if out == "" {
		return fmt.Errorf("export: no output path given (want model.onnx)")
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("export: output %s is a directory, want a file path", out)
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export: output folder %s does not exist (%w)", dir, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("export: output folder %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("export: output folder %s is not a directory", dir)
	}
	return nil
}

func samePath(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// OutputNames lists the names of a model's outputs.
func (m *Model) OutputNames() []string {
	names := make([]string, len(m.Outputs))
	for i, o := range m.Outputs {
		names[i] = o.Name
	}
	return slices.Clip(names)
}
