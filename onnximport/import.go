package onnximport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// What an import takes into the detector config.
const (
	// TakeBackbone imports the network up to C3, C4, C5; gidedge's FPN follows.
	TakeBackbone = "backbone"
	// TakeNeck imports the part from C3–C5 to P3–P5 as the config's neck,
	// on the template's own backbone.
	TakeNeck = "neck"
	// TakeAll imports both: the backbone up to C3–C5 and the neck to P3–P5.
	TakeAll = "all"
)

// ErrParity is wrapped by the error of an import whose engine outputs
// differ from ONNX Runtime's by more than the tolerance.
var ErrParity = errors.New("onnximport: parity check failed")

// DefaultTolerance bounds each output's largest difference between the
// engine and ONNX Runtime, relative to the output's scale.
const DefaultTolerance = 1e-4

// Options configure an import.
type Options struct {
	// Take is TakeBackbone, TakeNeck or TakeAll (default TakeBackbone).
	Take string
	// Outputs names the tensors where the imported parts end, finest
	// first: C3, C4, C5 for TakeBackbone; C3, C4, C5, P3, P4, P5 for
	// TakeNeck and TakeAll.
	Outputs []string
	// Template gives every other section of the config (head, FPN levels,
	// anchors, training defaults, input size). Nil: the model's own
	// gidedge config when it is a gidedge export, else retinanet-student.
	Template *models.Config
	// Name names the config (default: the template's name + "-imported").
	Name string
	// Size is the image side traced when the graph's input size is not
	// fixed (default: the template's input.size).
	Size int
	// BGR says the network reads BGR images; the first convolutions'
	// input channels are reversed so it reads gidedge's RGB.
	BGR bool
	// Mean and Std are the network's input normalisation in pixel units
	// (0–255), in the network's channel order; nil keeps the template's.
	Mean, Std *[3]float32
	// UnfoldBN gives every convolution not followed by a
	// BatchNormalization (folded batch norms) a fresh batch norm: the same
	// function in inference, normalisation in training.
	UnfoldBN bool
	// Tolerance is the parity bound (default DefaultTolerance).
	Tolerance float64
	// Seed draws the parity input.
	Seed uint64
	// Threads caps ONNX Runtime's intra-op threads (0: it chooses).
	Threads int
}

// Result is an imported network ready to be written.
type Result struct {
	// Config is the detector config with the imported parts (no
	// Pretrained path yet: Write sets it).
	Config models.Config
	// Tensors are the imported weights named as in the detector
	// ("backbone.…", "fpn.neck.…").
	Tensors []nn.Named
	// Source describes the file: name, opset, producer.
	Source string
	// Opset is the file's default-domain opset.
	Opset int64
	// Nodes counts the ONNX nodes translated; Ops counts them by op type.
	Nodes int
	Ops   map[string]int
	// Params counts the imported parameters (trainable scalars).
	Params int
	// TraceShape is the image shape the graph was traced and checked at;
	// ResizedShape the other batch and size it also ran at.
	TraceShape, ResizedShape []int
	// Outputs are the imported parts' output ports (C3–C5, then P3–P5).
	Outputs []models.GraphPort
	// Parity compares every output with ONNX Runtime.
	Parity    []export.OutputParity
	Worst     float64
	Tolerance float64
}

// Import reads the ONNX model at path and imports the part Options say.
// Nothing is written; see Write.
func Import(path string, opts Options) (*Result, error) {
	if opts.Take == "" {
		opts.Take = TakeBackbone
	}
	want := 3
	switch opts.Take {
	case TakeBackbone:
	case TakeNeck, TakeAll:
		want = 6
	default:
		return nil, fmt.Errorf("onnximport: take %q, want %q, %q or %q", opts.Take, TakeBackbone, TakeNeck, TakeAll)
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = DefaultTolerance
	}
	if !(opts.Tolerance > 0) {
		return nil, fmt.Errorf("onnximport: tolerance %v, want > 0", opts.Tolerance)
	}
	m, err := onnxgraph.Load(path)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %w", err)
	}
	if len(opts.Outputs) != want {
		return nil, fmt.Errorf("onnximport: %s: --take %s needs %d output tensors (%s), got %d; feature maps of the graph: %s",
			path, opts.Take, want, outputsWanted(opts.Take), len(opts.Outputs), Candidates(m, 8))
	}
	template, err := templateFor(m, opts)
	if err != nil {
		return nil, err
	}
	size := opts.Size
	if size == 0 {
		size = template.Input.Size
	}
	tr, err := translateModel(m, path, opts, size)
	if err != nil {
		return nil, err
	}
	t, pruned, image, trace, input, opset := tr.t, tr.pruned, tr.image, tr.trace, tr.input, tr.opset
	res := &Result{
		Source: source(path, m, opset), Opset: opset, Ops: map[string]int{},
		TraceShape: trace, Tolerance: opts.Tolerance,
	}
	for _, n := range pruned.Graph.Node {
		if n.OpType != "Constant" {
			res.Nodes++
			res.Ops[n.OpType]++
		}
	}
	if res.Outputs, err = t.ports(opts.Outputs, trace); err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	if err := t.parity(pruned, image, input, trace, opts, res); err != nil {
		return res, err
	}
	bb, neck, err := t.divide(image, res.Outputs)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	if res.ResizedShape, err = followsInput(bb, neck, trace); err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	if err := res.assemble(template, opts, bb, neck); err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	return res, nil
}

func outputsWanted(take string) string {
	if take == TakeBackbone {
		return "C3, C4, C5: the backbone's maps at strides 8, 16, 32"
	}
	return "C3, C4, C5 then P3, P4, P5: the backbone's and the neck's maps at strides 8, 16, 32"
}

// translated is a model translated node by node, traced at one input.
type translated struct {
	t      *translator
	pruned *onnxpb.ModelProto // the original nodes the outputs need
	image  string
	trace  []int
	input  []float32 // the traced image
	opset  int64
}

// translateModel prunes m to what opts.Outputs need, checks every op
// against OpTable, reads old opsets through onnxgraph.UpgradeOpset and
// translates the nodes while running them on a seeded random image of the
// input's shape (size for unknown height and width).
func translateModel(m *onnxpb.ModelProto, path string, opts Options, size int) (*translated, error) {
	opset := onnxgraph.Opset(m)
	if opset < 1 || opset > MaxOpset {
		return nil, fmt.Errorf("onnximport: %s: default-domain opset %d, want 1 to %d", path, opset, MaxOpset)
	}
	pruned, image, err := prune(m, path, opts.Outputs)
	if err != nil {
		return nil, err
	}
	if err := checkSupport(pruned, opset); err != nil {
		return nil, err
	}
	working := pruned
	if opset < onnxgraph.MaxUpgradeOpset {
		if working, err = onnxgraph.UpgradeOpset(pruned, onnxgraph.MaxUpgradeOpset); err != nil {
			return nil, fmt.Errorf("onnximport: %s: reading opset %d: %w", path, opset, err)
		}
	}
	if err := onnxgraph.TopoSort(working.Graph); err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	trace, err := imageShape(m.Graph, image, size)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	t := newTranslator(working, opset, image, opts)
	input := randomImage(opts.Seed, trace)
	engine.NoGrad(func() {
		t.env[image] = engine.FromHost(input, trace...)
		err = t.translateAll(working.Graph.Node)
	})
	if err != nil {
		return nil, err
	}
	return &translated{t: t, pruned: pruned, image: image, trace: trace, input: input, opset: opset}, nil
}

// templateFor returns the config the import fills in.
func templateFor(m *onnxpb.ModelProto, opts Options) (models.Config, error) {
	if opts.Template != nil {
		return *opts.Template, nil
	}
	if js, ok := onnxgraph.Metadata(m)[export.ConfigKey]; ok {
		c, err := models.ParseConfig([]byte(js), "the model's "+export.ConfigKey+" metadata")
		if err != nil {
			return models.Config{}, fmt.Errorf("onnximport: %w", err)
		}
		return c, nil
	}
	c, err := models.Named("retinanet-student")
	if err != nil {
		return models.Config{}, fmt.Errorf("onnximport: %w", err)
	}
	return c, nil
}

func source(path string, m *onnxpb.ModelProto, opset int64) string {
	s := fmt.Sprintf("%s (opset %d", filepath.Base(path), opset)
	if m.ProducerName != "" {
		s += ", " + strings.TrimSpace(m.ProducerName+" "+m.ProducerVersion)
	}
	return s + ")"
}

// prune returns a copy of m holding only the nodes the outputs need, with
// those outputs as its graph outputs, and the image input they read.
func prune(m *onnxpb.ModelProto, path string, outputs []string) (*onnxpb.ModelProto, string, error) {
	ix := onnxgraph.NewIndex(m.Graph)
	need := map[*onnxpb.NodeProto]bool{}
	inputs := map[string]bool{}
	var stack []string
	for _, o := range outputs {
		if ix.Producer[o] == nil {
			return nil, "", fmt.Errorf("onnximport: %s: no node computes tensor %q (feature maps of the graph: %s)", path, o, Candidates(m, 8))
		}
		stack = append(stack, o)
	}
	seen := map[string]bool{}
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[name] || name == "" {
			continue
		}
		seen[name] = true
		if ix.IsGraphInput(name) {
			inputs[name] = true
			continue
		}
		p := ix.Producer[name]
		if p == nil || need[p] {
			continue
		}
		need[p] = true
		stack = append(stack, p.Input...)
		for _, a := range p.Attribute {
			if a.G != nil || len(a.Graphs) > 0 {
				return nil, "", unsupported(p, onnxgraph.Opset(m), "has a subgraph (If, Loop, Scan): control flow is not translated")
			}
		}
	}
	if len(inputs) != 1 {
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range inputs {
				if !yield(k) {
					return
				}
			}
		})
		return nil, "", fmt.Errorf("onnximport: %s: the outputs %v read %d graph inputs %v, want one (the image)", path, outputs, len(names), names)
	}
	var image string
	for k := range inputs {
		image = k
	}
	c := onnxgraph.Clone(m)
	kept := c.Graph.Node[:0]
	for i, n := range c.Graph.Node {
		if need[m.Graph.Node[i]] {
			kept = append(kept, n)
		}
	}
	c.Graph.Node = kept
	c.Graph.Output = nil
	for _, o := range outputs {
		c.Graph.Output = append(c.Graph.Output, onnxgraph.TensorValueInfo(o, onnxgraph.Float32, nil))
	}
	c.Graph.Input = slices.DeleteFunc(c.Graph.Input, func(v *onnxpb.ValueInfoProto) bool { return v.Name != image && ix.Init[v.Name] == nil })
	onnxgraph.RemoveInitializerInputs(c)
	onnxgraph.RemoveUnusedInitializers(c.Graph)
	onnxgraph.PruneValueInfo(c.Graph)
	return c, image, nil
}

// checkSupport returns the UnsupportedError of every node whose op the
// importer does not translate, joined.
func checkSupport(m *onnxpb.ModelProto, opset int64) error {
	var errs []error
	unknown := false
	for _, n := range m.Graph.Node {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			errs = append(errs, unsupported(n, opset, fmt.Sprintf("custom domain %q: only default-domain ops are translated", n.Domain)))
			continue
		}
		info, ok := OpTable[n.OpType]
		switch {
		case !ok:
			errs = append(errs, unsupported(n, opset, "op type not translated"))
			unknown = true
		case opset < info.Since:
			errs = append(errs, unsupported(n, opset, fmt.Sprintf("translated from opset %d", info.Since)))
		}
	}
	if unknown {
		errs = append(errs, fmt.Errorf("onnximport: the ops translated are %s", supportedList()))
	}
	return errors.Join(errs...)
}

// imageShape is the traced image shape: the input's declared shape with an
// unknown batch as 1 and unknown height or width as size.
func imageShape(g *onnxpb.GraphProto, image string, size int) ([]int, error) {
	_, dims, ok := onnxgraph.TensorType(onnxgraph.FindValueInfo(g, image))
	if !ok {
		dims = []int64{-1, 3, -1, -1}
	}
	if len(dims) != 4 || (dims[1] != 3 && dims[1] != -1) {
		return nil, fmt.Errorf("input %q has shape %v, want an image [N, 3, H, W]", image, dims)
	}
	shape := []int{1, 3, size, size}
	for i, d := range dims {
		if d > 0 && i != 1 {
			shape[i] = int(d)
		}
	}
	if shape[0] != 1 {
		shape[0] = int(dims[0])
	}
	return shape, nil
}

// randomImage draws a standard-normal image batch (normalised input space).
func randomImage(seed uint64, shape []int) []float32 {
	rng := rand.New(rand.NewPCG(seed, seed^0x1a9047))
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func newTranslator(m *onnxpb.ModelProto, origOpset int64, image string, opts Options) *translator {
	t := &translator{
		opset: onnxgraph.Opset(m), origOpset: origOpset, image: image, bgr: opts.BGR, unfoldBN: opts.UnfoldBN,
		consts: map[string]*constant{}, consumers: map[string][]*onnxpb.NodeProto{}, keep: map[string]bool{},
		net: &models.GraphModule{Config: &models.GraphConfig{}}, env: map[string]*engine.Tensor{},
		vary: map[string][]bool{image: {true, false, true, true}}, rng: rand.New(rand.NewPCG(1, 2)),
		used: map[string]bool{}, fused: map[*onnxpb.NodeProto]bool{}, constTensor: map[string]string{},
	}
	for _, o := range opts.Outputs {
		t.keep[o] = true
	}
	for _, init := range m.Graph.Initializer {
		if c, err := readConstant(init); err == nil {
			t.consts[init.Name] = c
		}
	}
	for _, n := range m.Graph.Node {
		for _, in := range n.Input {
			t.consumers[in] = append(t.consumers[in], n)
		}
		if n.OpType == "Constant" && len(n.Output) == 1 {
			if c, ok := constantNode(n); ok {
				t.consts[n.Output[0]] = c
			}
		}
	}
	return t
}

func readConstant(tp *onnxpb.TensorProto) (*constant, error) {
	c := &constant{dims: slices.Clone(tp.Dims)}
	if tp.DataType == onnxgraph.Float32 {
		f, err := onnxgraph.Float32s(tp)
		if err != nil {
			return nil, err
		}
		c.f = f
		return c, nil
	}
	i, err := onnxgraph.Int64s(tp)
	if err != nil {
		return nil, err
	}
	c.i, c.isInt = i, true
	return c, nil
}

// constantNode reads a Constant node's value (value, value_float(s),
// value_int(s)).
func constantNode(n *onnxpb.NodeProto) (*constant, bool) {
	for _, a := range n.Attribute {
		switch a.Name {
		case "value":
			if a.T == nil {
				return nil, false
			}
			c, err := readConstant(a.T)
			return c, err == nil
		case "value_float":
			return &constant{f: []float32{a.F}}, true
		case "value_floats":
			return &constant{dims: []int64{int64(len(a.Floats))}, f: slices.Clone(a.Floats)}, true
		case "value_int":
			return &constant{i: []int64{a.I}, isInt: true}, true
		case "value_ints":
			return &constant{dims: []int64{int64(len(a.Ints))}, i: slices.Clone(a.Ints), isInt: true}, true
		}
	}
	return nil, false
}

// translateAll translates every node in order; it checks first that the
// image feeds only convolutions when its channels must be reversed.
func (t *translator) translateAll(nodes []*onnxpb.NodeProto) error {
	if t.bgr {
		for _, c := range t.consumers[t.image] {
			if c.OpType != "Conv" {
				return t.fail(c, "reads the image, whose channels must be reversed for BGR: only convolutions reading the image can be reordered")
			}
		}
	}
	for _, n := range nodes {
		if t.fused[n] {
			continue
		}
		fn := translators[n.OpType]
		if fn == nil {
			return t.fail(n, "op type not translated (translated: %s)", supportedList())
		}
		if err := fn(t, n); err != nil {
			return err
		}
	}
	return nil
}

// ports checks the requested outputs (C3–C5, then P3–P5) for strides 8,
// 16 and 32 and returns them with their channels.
func (t *translator) ports(names []string, trace []int) ([]models.GraphPort, error) {
	h, w := trace[2], trace[3]
	ports := make([]models.GraphPort, len(names))
	for i, name := range names {
		x, ok := t.env[name]
		if !ok {
			return nil, fmt.Errorf("output %q was not computed", name)
		}
		s := x.Shape()
		stride := []int{8, 16, 32}[i%3]
		if len(s) != 4 || s[0] != trace[0] || s[2] != (h+stride-1)/stride || s[3] != (w+stride-1)/stride {
			part := "backbone C"
			if i >= 3 {
				part = "neck P"
			}
			return nil, fmt.Errorf("output %q (%s%d) has shape %v; at stride %d of the %dx%d input it should be [%d, C, %d, %d] (outputs go finest first: strides 8, 16, 32)",
				name, part, i%3+3, s, stride, h, w, trace[0], (h+stride-1)/stride, (w+stride-1)/stride)
		}
		ports[i] = models.GraphPort{Name: name, Channels: s[1], Stride: stride}
	}
	if len(ports) == 6 {
		c := ports[3].Channels
		if ports[4].Channels != c || ports[5].Channels != c {
			return nil, fmt.Errorf("neck outputs have %d, %d and %d channels; the head reads every level with one width, want them equal",
				ports[3].Channels, ports[4].Channels, ports[5].Channels)
		}
	}
	return ports, nil
}

// parity runs the pruned original graph in ONNX Runtime on the traced
// input and compares every requested output with the engine's.
func (t *translator) parity(pruned *onnxpb.ModelProto, image string, input []float32, trace []int, opts Options, res *Result) error {
	data, err := onnxgraph.Marshal(pruned)
	if err != nil {
		return fmt.Errorf("onnximport: %w", err)
	}
	ortInput := input
	if opts.BGR {
		ortInput = reverseChannels(input, trace)
	}
	shape := int64s(trace)
	names := make([]string, len(res.Outputs))
	for i, p := range res.Outputs {
		names[i] = p.Name
	}
	shapes, values, err := export.RunONNX(data, image, ortInput, shape, names, opts.Threads)
	if err != nil {
		return fmt.Errorf("onnximport: parity check: %w", err)
	}
	var bad []string
	for i, name := range names {
		x := t.env[name]
		op, err := export.Measure(name, int64s(x.Shape()), x.ToHost(), shapes[i], values[i])
		if err != nil {
			return fmt.Errorf("onnximport: %w", err)
		}
		res.Parity = append(res.Parity, op)
		res.Worst = max(res.Worst, op.Relative)
		if op.Relative > opts.Tolerance {
			bad = append(bad, fmt.Sprintf("%s %.3g (|diff| %.3g, scale %.3g)", name, op.Relative, op.MaxAbsDiff, op.Scale))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: engine against ONNX Runtime, relative difference over %.3g on %s", ErrParity, opts.Tolerance, strings.Join(bad, ", "))
	}
	return nil
}

// int64s widens a shape for ONNX Runtime.
func int64s(shape []int) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[i] = int64(d)
	}
	return out
}

// reverseChannels swaps the first and third channel planes of an NCHW batch.
func reverseChannels(x []float32, shape []int) []float32 {
	out := slices.Clone(x)
	plane := shape[2] * shape[3]
	for n := range shape[0] {
		base := n * 3 * plane
		copy(out[base:base+plane], x[base+2*plane:base+3*plane])
		copy(out[base+2*plane:base+3*plane], x[base:base+plane])
	}
	return out
}

// divide splits the translated nodes into the backbone (what C3–C5 need)
// and the neck (the rest of what P3–P5 need).
func (t *translator) divide(image string, ports []models.GraphPort) (bb, neck *models.GraphModule, err error) {
	g := t.net.Config
	producer := map[string]int{}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			producer[o] = i
		}
	}
	ancestors := func(outs []string, stop map[string]bool) []bool {
		in := make([]bool, len(g.Nodes))
		stack := slices.Clone(outs)
		for len(stack) > 0 {
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if stop[name] {
				continue
			}
			i, ok := producer[name]
			if !ok || in[i] {
				continue
			}
			in[i] = true
			stack = append(stack, g.Nodes[i].Inputs...)
		}
		return in
	}
	cs := []string{ports[0].Name, ports[1].Name, ports[2].Name}
	bbNodes := ancestors(cs, nil)
	bb = t.subModule(bbNodes, []models.GraphPort{{Name: image, Channels: 3, Stride: 1}}, ports[:3])
	if len(ports) == 3 {
		return bb, nil, nil
	}
	ps := []string{ports[3].Name, ports[4].Name, ports[5].Name}
	stop := map[string]bool{cs[0]: true, cs[1]: true, cs[2]: true}
	neckNodes := ancestors(ps, stop)
	for i, in := range neckNodes {
		if !in {
			continue
		}
		for _, name := range g.Nodes[i].Inputs {
			if stop[name] {
				continue
			}
			p, ok := producer[name]
			if !ok {
				return nil, nil, fmt.Errorf("the neck reads the image %q directly; it can only read C3, C4, C5", name)
			}
			if bbNodes[p] && !neckNodes[p] && g.Nodes[p].Op != models.OpConstant {
				return nil, nil, fmt.Errorf("neck node %q reads %q, which the backbone computes before its outputs %v: name the backbone's outputs where the neck starts", g.Nodes[i].Name, name, cs)
			}
			if g.Nodes[p].Op == models.OpConstant {
				neckNodes[p] = true
			}
		}
	}
	neck = t.subModule(neckNodes, ports[:3], ports[3:])
	return bb, neck, nil
}

// subModule copies the chosen nodes (and their tensors) into a module of
// their own.
func (t *translator) subModule(chosen []bool, inputs, outputs []models.GraphPort) *models.GraphModule {
	m := &models.GraphModule{Config: &models.GraphConfig{Inputs: slices.Clone(inputs), Outputs: slices.Clone(outputs)}}
	for i, in := range chosen {
		if in {
			m.Config.Nodes = append(m.Config.Nodes, t.net.Config.Nodes[i])
			m.Layers = append(m.Layers, t.net.Layers[i])
		}
	}
	return m
}

// followsInput runs the imported parts on a batch of 2 at an image 32
// pixels larger and checks their outputs' strides: reshape and resize targets were
// rewritten to follow the input, and this proves they do.
func followsInput(bb, neck *models.GraphModule, trace []int) (shape []int, err error) {
	shape = []int{2, 3, trace[2] + 32, trace[3] + 32}
	err = engine.Guard(func() error {
		engine.NoGrad(func() {
			x := engine.Zeros(shape...)
			outs := bb.Forward(x)
			checkStrides(bb.Config.Outputs, outs, shape)
			if neck != nil {
				checkStrides(neck.Config.Outputs, neck.Forward(outs...), shape)
			}
		})
		return nil
	})
	if err != nil {
		return shape, fmt.Errorf("the imported network does not run at batch 2 and %dx%d: %w", shape[2], shape[3], err)
	}
	return shape, nil
}

func checkStrides(ports []models.GraphPort, outs []*engine.Tensor, shape []int) {
	for i, p := range ports {
		s := outs[i].Shape()
		want := []int{shape[0], p.Channels, (shape[2] + p.Stride - 1) / p.Stride, (shape[3] + p.Stride - 1) / p.Stride}
		if !slices.Equal(s, want) {
			panic(&engine.OpError{Op: "onnximport", Shapes: [][]int{s}, Err: engine.ErrShape,
				Detail: fmt.Sprintf("output %q is %v, want %v", p.Name, s, want)})
		}
	}
}

// assemble builds the config and names the tensors.
func (r *Result) assemble(template models.Config, opts Options, bb, neck *models.GraphModule) error {
	cfg := template
	cfg.Pretrained = ""
	cfg.Name = opts.Name
	if cfg.Name == "" {
		cfg.Name = template.Name + "-imported"
	}
	if opts.Size > 0 {
		cfg.Input.Size = opts.Size
	}
	if opts.Mean != nil || opts.Std != nil {
		mean, std := cfg.Input.Mean, cfg.Input.Std
		if opts.Mean != nil {
			mean = pixelsToUnit(*opts.Mean, opts.BGR)
		}
		if opts.Std != nil {
			std = pixelsToUnit(*opts.Std, opts.BGR)
		}
		cfg.Input.Mean, cfg.Input.Std = mean, std
	}
	var parts []nn.Named
	add := func(prefix string, m *models.GraphModule) error {
		state, err := models.Prefixed(m, prefix+".")
		if err != nil {
			return err
		}
		parts = append(parts, state...)
		r.Params += nn.CountParams(m)
		return nil
	}
	if opts.Take == TakeBackbone || opts.Take == TakeAll {
		bb.Config.Source = r.Source
		cfg.Backbone = models.BackboneConfig{Type: models.BackboneImported, Graph: bb.Config}
		if err := add("backbone", bb); err != nil {
			return err
		}
	}
	if opts.Take == TakeNeck || opts.Take == TakeAll {
		neck.Config.Source = r.Source
		cfg.Neck = neck.Config
		cfg.FPN.Channels = neck.Config.Outputs[0].Channels
		if err := add("fpn.neck", neck); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("the imported config is not valid: %w", err)
	}
	r.Config, r.Tensors = cfg, parts
	return nil
}

// pixelsToUnit turns a normalisation in 0–255 pixel units into gidedge's
// 0–1 units, reversing BGR into RGB.
func pixelsToUnit(v [3]float32, bgr bool) [3]float32 {
	out := [3]float32{v[0] / 255, v[1] / 255, v[2] / 255}
	if bgr {
		out[0], out[2] = out[2], out[0]
	}
	return out
}

// Write saves the imported weights to weights (a .safetensors file) and
// the config, whose pretrained field names the weights relative to the
// config's folder, to config. Both writes are atomic.
func (r *Result) Write(weights, config string) error {
	if weights == "" || config == "" {
		return errors.New("onnximport: no output path given (want model.safetensors and its config .json)")
	}
	absW, err := filepath.Abs(weights)
	if err != nil {
		return fmt.Errorf("onnximport: %w", err)
	}
	absC, err := filepath.Abs(config)
	if err != nil {
		return fmt.Errorf("onnximport: %w", err)
	}
	if absW == absC {
		return fmt.Errorf("onnximport: the weights and the config would both be %s", weights)
	}
	cfg := r.Config
	if cfg.Pretrained, err = filepath.Rel(filepath.Dir(absC), absW); err != nil {
		cfg.Pretrained = absW
	}
	meta := map[string]string{"source": r.Source}
	if err := models.SavePretrained(weights, r.Tensors, cfg, meta); err != nil {
		return fmt.Errorf("onnximport: %w", err)
	}
	if err := atomicfile.WriteFile(config, append(cfg.JSON(), '\n')); err != nil {
		return fmt.Errorf("onnximport: %w", err)
	}
	return nil
}

// ConfigPath is the config file written beside weights by default:
// model.safetensors → model.json.
func ConfigPath(weights string) string {
	return strings.TrimSuffix(weights, filepath.Ext(weights)) + ".json"
}

// Candidates lists up to perStride feature maps per stride of a graph (the
// tensors value_info declares as NCHW with a known size), for choosing
// --outputs.
func Candidates(m *onnxpb.ModelProto, perStride int) string {
	g := m.Graph
	var h, w int64
	for _, in := range g.Input {
		if _, dims, ok := onnxgraph.TensorType(in); ok && len(dims) == 4 && dims[1] == 3 && dims[2] > 0 {
			h, w = dims[2], dims[3]
		}
	}
	if h == 0 {
		return "(the graph declares no fixed image size; see gidedge import --list)"
	}
	byStride := map[int64][]string{}
	for _, v := range g.ValueInfo {
		_, dims, ok := onnxgraph.TensorType(v)
		if !ok || len(dims) != 4 || dims[2] <= 0 || dims[3] <= 0 || h%dims[2] != 0 || w/dims[3] != h/dims[2] {
			continue
		}
		s := h / dims[2]
		if s >= 8 && s <= 64 {
			byStride[s] = append(byStride[s], fmt.Sprintf("%s (%d ch)", v.Name, dims[1]))
		}
	}
	if len(byStride) == 0 {
		return "(value_info declares no feature map shapes; see gidedge import --list)"
	}
	strides := make([]int64, 0, len(byStride))
	for s := range byStride {
		strides = append(strides, s)
	}
	sort.Slice(strides, func(i, j int) bool { return strides[i] < strides[j] })
	var parts []string
	for _, s := range strides {
		names := byStride[s]
		more := ""
		if len(names) > perStride {
			more = fmt.Sprintf(", … %d more", len(names)-perStride)
			names = names[len(names)-perStride:]
		}
		parts = append(parts, fmt.Sprintf("stride %d: %s%s", s, strings.Join(names, ", "), more))
	}
	return strings.Join(parts, "; ")
}
