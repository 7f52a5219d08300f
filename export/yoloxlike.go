package export

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// YOLOXLike describes a detector with the graph of a public YOLOX export
// (Ge et al., "YOLOX: Exceeding YOLO Series in 2021"), written straight to
// ONNX by this package's graph writer: a Focus stem (four strided Slices and
// a Concat), CSPDarknet stages with SiLU activations (Sigmoid·Mul), an SPP
// block of 5/9/13 max-pools, a PAFPN neck with nearest Resize, and YOLOX's
// decoupled head whose one output "output" [1, N, 5+K] concatenates, for
// every position of strides 8, 16 and 32, the raw box regression (4), the
// sigmoid objectness and the K sigmoid class scores. The input "images"
// [1, 3, Size, Size] is BGR in 0–255, unnormalised, letterboxed with 114:
// YOLOX's own pre-processing.
//
// It exists to test and benchmark quantization on a model family gidedge
// does not train. Its weights are not trained: see WriteYOLOXLike.
type YOLOXLike struct {
	// Width multiplies YOLOX's channel widths (stem 64, stages 128 … 1024,
	// head 256): 0.375 is YOLOX-Tiny's, 0.25 YOLOX-Nano's.
	Width float64
	// Depthwise makes every 3×3 convolution outside the stem a depthwise
	// 3×3 followed by a pointwise 1×1, as YOLOX-Nano does.
	Depthwise bool
	// Size is the input height and width, a multiple of 32.
	Size int
	// Classes is the number of class scores per position.
	Classes int
	// Opset of the graph: 11 (the public YOLOX exports) when zero.
	Opset int
	// Seed draws the weights.
	Seed uint64
	// RandomShare is the share of each filter's energy drawn at random
	// rather than from a data patch (see WriteYOLOXLike): 0 gives filters
	// that are data patches, 1 purely random filters.
	RandomShare float64
	// Threads caps ONNX Runtime's intra-op threads while the batch-norm
	// statistics are measured (0 lets it choose).
	Threads int
}

// yoloxPriorProb is the score YOLOX's class and objectness biases start at.
const yoloxPriorProb = 0.01

// yoloxBNEps is the epsilon of YOLOX's batch norms.
const yoloxBNEps = 1e-3

// Batch-norm affine parameters are drawn as log γ ~ N(0, 0.62²) and
// β/γ ~ N(0.2, 0.72²): the spread measured over the 2404 channels of the 35
// trained batch norms in UltraFace (../shared/models), centred at γ = 1.
const (
	bnLogGammaStd   = 0.62
	bnBetaOverGamma = 0.2
	bnBetaStd       = 0.72
)

func (c YOLOXLike) withDefaults() (YOLOXLike, error) {
	if c.Opset == 0 {
		c.Opset = 11
	}
	switch {
	case !(c.Width > 0) || c.Width > 2:
		return c, fmt.Errorf("export: YOLOX-like width %v, want a multiplier in (0, 2]", c.Width)
	case c.Size <= 0 || c.Size%32 != 0:
		return c, fmt.Errorf("export: YOLOX-like input size %d, want a positive multiple of 32", c.Size)
	case c.Classes <= 0:
		return c, fmt.Errorf("export: YOLOX-like classes %d, want ≥ 1", c.Classes)
	case c.Opset < 11 || c.Opset > MaxOpset:
		return c, fmt.Errorf("export: YOLOX-like opset %d, want 11 to %d", c.Opset, MaxOpset)
	case c.Threads < 0:
		return c, fmt.Errorf("export: threads %d, want ≥ 0", c.Threads)
	case !(c.RandomShare >= 0 && c.RandomShare <= 1):
		return c, fmt.Errorf("export: YOLOX-like random share %v, want a value in [0, 1]", c.RandomShare)
	}
	return c, nil
}

// Positions is N, the number of rows of the output: every cell of the
// stride-8, 16 and 32 grids.
func (c YOLOXLike) Positions() int {
	n := 0
	for _, s := range []int{8, 16, 32} {
		n += (c.Size / s) * (c.Size / s)
	}
	return n
}

// convLayer is one convolution with its batch norm (or, for the prediction
// layers, its bias) before folding.
type convLayer struct {
	name                      string
	cin, cout, k, stride, grp int
	weight                    []float32
	// bn: γ and β drawn at creation, mean and variance measured; a layer
	// without bn has bias instead.
	bn               bool
	gamma, beta      []float32
	mean, variance   []float64
	measured, bypass bool
	bias             []float32
	input, output    string // tensors the layer's Conv reads and writes
}

// yoloxWriter emits the graph; layers persist across rebuilds so the weights
// are drawn once and the batch-norm statistics filled in layer by layer.
type yoloxWriter struct {
	cfg    YOLOXLike
	rng    *rand.Rand
	g      *graph
	layers map[string]*convLayer
	order  []*convLayer
	batch  int
}

// WriteYOLOXLike builds the YOLOX-like model. Its weights follow a
// principled, data-driven initialisation with batch norm folded, not
// training. Layer after layer in graph order, on calib (images preprocessed
// as the model expects, 3·Size·Size values each, BGR 0–255): each
// convolution's filters are random centred patches of its own input (see
// samplePatches); its batch norm gets γ and β drawn from the distribution
// measured in a trained network (see the constants above) and a running
// mean and variance measured on the images, exactly as a trained network's
// statistics describe its own activations; the norm is then folded into the
// convolution as an exporter does. The prediction layers start as YOLOX's
// do (uniform ±1/√fan-in weights, biases at the 1 % prior); the objectness
// and class layers are then scaled and biased so that their logits spread
// like a trained detector's and a few positions per image score high (see
// setTopBias). Activations thus have the per-channel spread of scales and
// offsets of a trained network; the detections carry no knowledge of
// objects.
// The same config, seed and images give the same bytes.
func WriteYOLOXLike(cfg YOLOXLike, calib [][]float32) (*onnxpb.ModelProto, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(calib) == 0 {
		return nil, fmt.Errorf("export: YOLOX-like batch-norm statistics need at least one calibration image")
	}
	per := 3 * cfg.Size * cfg.Size
	batch := make([]float32, 0, len(calib)*per)
	for i, x := range calib {
		if len(x) != per {
			return nil, fmt.Errorf("export: YOLOX-like calibration image %d has %d values, want 3×%d×%d = %d", i, len(x), cfg.Size, cfg.Size, per)
		}
		batch = append(batch, x...)
	}
	w := &yoloxWriter{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9010c5)), layers: map[string]*convLayer{}}
	if _, err := w.build(1); err != nil { // draws every layer's weights
		return nil, err
	}
	shape := []int64{int64(len(calib)), 3, int64(cfg.Size), int64(cfg.Size)}
	runAll := func(tensors ...string) ([]array, error) {
		m, err := w.build(len(calib))
		if err != nil {
			return nil, err
		}
		pruneToOutput(m.Graph, tensors...)
		data, err := onnxgraph.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("export: YOLOX-like: %w", err)
		}
		out, err := runORT(data, batch, shape, tensors, cfg.Threads)
		if err != nil {
			return nil, fmt.Errorf("export: YOLOX-like: %w", err)
		}
		return out, nil
	}
	run := func(tensor string) (array, error) {
		out, err := runAll(tensor)
		if err != nil {
			return array{}, err
		}
		return out[0], nil
	}
	for _, l := range w.order {
		if !l.bn {
			continue
		}
		in, err := run(l.input)
		if err != nil {
			return nil, err
		}
		l.samplePatches(in, w.rng, w.cfg.RandomShare)
		l.bypass = true
		out, err := run(l.output)
		if err != nil {
			return nil, err
		}
		l.mean, l.variance = channelMoments(out.data, len(calib), l.cout)
		l.bypass, l.measured = false, true
	}
	// The score biases: on the images, yoloxConfidentShare of the positions
	// of each level reach objectness 0.5, and as many class probability 0.8,
	// about as many confident positions as a trained YOLOX-Tiny has on a COCO
	// image, so the float model has detections INT8 must reproduce.
	for i := range 3 {
		obj := w.layers[fmt.Sprintf("head.obj_preds.%d", i)]
		cls := w.layers[fmt.Sprintf("head.cls_preds.%d", i)]
		outs, err := runAll(obj.output, cls.output)
		if err != nil {
			return nil, err
		}
		setTopBias(obj, outs[0].data, len(calib), 0)
		setTopBias(cls, outs[1].data, len(calib), float32(math.Log(0.8/0.2)))
	}
	return w.build(1)
}

// yoloxConfidentShare is the share of positions the score layers make
// confident, and yoloxLogitGap how far below them the median position's
// logit sits: like a trained detector's, mostly far below zero with a few
// positions above.
const (
	yoloxConfidentShare = 0.005
	yoloxLogitGap       = 6.5
)

// setTopBias scales a score layer's weights and sets its bias (one value
// for all channels) so that, over the positions of n images (NCHW), the
// largest logit reaches target at the top yoloxConfidentShare and sits
// yoloxLogitGap below it at the median.
func setTopBias(l *convLayer, out []float32, n int, target float32) {
	hw := len(out) / (n * l.cout)
	best := make([]float64, 0, n*hw)
	for i := range n {
		for p := range hw {
			m := math.Inf(-1)
			for c := range l.cout {
				m = math.Max(m, float64(out[(i*l.cout+c)*hw+p]-l.bias[c]))
			}
			best = append(best, m)
		}
	}
	sort.Float64s(best)
	top := best[min(len(best)-1, int(float64(len(best))*(1-yoloxConfidentShare)))]
	median := best[len(best)/2]
	scale := 1.0
	if top > median {
		scale = yoloxLogitGap / (top - median)
	}
	for i := range l.weight {
		l.weight[i] = float32(float64(l.weight[i]) * scale)
	}
	for c := range l.bias {
		l.bias[c] = target - float32(top*scale)
	}
}

// samplePatches sets each output channel's filter to a patch of the layer's
// input at a random image and position, centred on each input channel's
// mean, with the norm of the He-normal filter it replaces. Filters drawn
// from the data lie in the input's dominant subspace, as trained filters
// do (Coates and Ng, "The Importance of Encoding Versus Training with Sparse
// Coding and Vector Quantization", 2011, initialise with random patches):
// purely random filters mostly read low-variance directions, which the
// batch norm after them then amplifies, noise included.
func (l *convLayer) samplePatches(in array, rng *rand.Rand, randomShare float64) {
	n, c, h, w := int(in.shape[0]), int(in.shape[1]), int(in.shape[2]), int(in.shape[3])
	if c != l.cin {
		return
	}
	mean := make([]float64, c)
	for i := range n {
		for ch := range c {
			for _, v := range in.data[((i*c)+ch)*h*w : ((i*c)+ch+1)*h*w] {
				mean[ch] += float64(v)
			}
		}
	}
	for ch := range mean {
		mean[ch] /= float64(n * h * w)
	}
	cg, pad := l.cin/l.grp, (l.k-1)/2
	outH, outW := (h+2*pad-l.k)/l.stride+1, (w+2*pad-l.k)/l.stride+1
	per := cg * l.k * l.k
	patch := make([]float64, per)
	for oc := range l.cout {
		img, oy, ox := rng.IntN(n), rng.IntN(outH), rng.IntN(outW)
		first := (oc / (l.cout / l.grp)) * cg
		norm := 0.0
		for ci := range cg {
			ch := first + ci
			for ky := range l.k {
				for kx := range l.k {
					y, x := oy*l.stride-pad+ky, ox*l.stride-pad+kx
					v := 0.0
					if y >= 0 && y < h && x >= 0 && x < w {
						v = float64(in.data[((img*c+ch)*h+y)*w+x]) - mean[ch]
					}
					patch[(ci*l.k+ky)*l.k+kx] = v
					norm += v * v
				}
			}
		}
		old := l.weight[oc*per : (oc+1)*per]
		if norm == 0 {
			continue // a flat patch: keep the random filter
		}
		target := 0.0
		for _, v := range old {
			target += float64(v) * float64(v)
		}
		// Mix the patch and the random filter (independent, so nearly
		// orthogonal) with the given shares of the energy.
		kp := math.Sqrt((1 - randomShare) * target / norm)
		kr := math.Sqrt(randomShare)
		for i, v := range patch {
			old[i] = float32(v*kp + float64(old[i])*kr)
		}
	}
}

// channelMoments returns the mean and variance of every channel of an NCHW
// tensor with n images and c channels.
func channelMoments(x []float32, n, c int) ([]float64, []float64) {
	hw := len(x) / (n * c)
	mean, variance := make([]float64, c), make([]float64, c)
	for ch := range c {
		var s, ss float64
		for i := range n {
			for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += float64(v)
				ss += float64(v) * float64(v)
			}
		}
		cnt := float64(n * hw)
		mean[ch] = s / cnt
		variance[ch] = math.Max(ss/cnt-mean[ch]*mean[ch], 0)
	}
	return mean, variance
}

// pruneToOutput makes outs the graph's only outputs and drops the nodes
// they do not depend on.
func pruneToOutput(g *onnxpb.GraphProto, outs ...string) {
	need := map[string]bool{}
	for _, o := range outs {
		need[o] = true
	}
	var kept []*onnxpb.NodeProto
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		used := false
		for _, o := range n.Output {
			used = used || need[o]
		}
		if !used {
			continue
		}
		for _, in := range n.Input {
			need[in] = true
		}
		kept = append(kept, n)
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	g.Node = kept
	g.Output = nil
	for _, o := range outs {
		g.Output = append(g.Output, onnxgraph.TensorValueInfo(o, onnxgraph.Float32, nil))
	}
	onnxgraph.RemoveUnusedInitializers(g)
}

// build emits the whole graph for a batch of the given size.
func (w *yoloxWriter) build(batch int) (*onnxpb.ModelProto, error) {
	w.g = newGraph(int64(w.cfg.Opset))
	w.batch = batch
	in := w.g.reserve(InputName)
	out, err := w.network(in)
	if err != nil {
		return nil, err
	}
	size, rows := w.cfg.Size, w.cfg.Positions()
	graph := w.g.graphProto("yolox-like",
		valueInfo(in, batch, 0, 3, size, size),
		[]*onnxpb.ValueInfoProto{valueInfo(out, batch, 0, rows, 5+w.cfg.Classes)})
	graph.DocString = fmt.Sprintf("YOLOX-like test detector (width %.3g, depthwise %v, %d classes), untrained: principled init with batch norm folded", w.cfg.Width, w.cfg.Depthwise, w.cfg.Classes)
	m := &onnxpb.ModelProto{
		IrVersion:       irVersion(int64(w.cfg.Opset)),
		ProducerName:    "gidedge",
		ProducerVersion: buildinfo.Version,
		DocString:       graph.DocString,
		Graph:           graph,
	}
	onnxgraph.SetOpset(m, int64(w.cfg.Opset))
	return m, nil
}

// layer returns the named layer, drawing its weights the first time.
func (w *yoloxWriter) layer(name string, cin, cout, k, stride, groups int, bn bool) *convLayer {
	if l, ok := w.layers[name]; ok {
		return l
	}
	l := &convLayer{name: name, cin: cin, cout: cout, k: k, stride: stride, grp: groups, bn: bn}
	fanIn := float64(cin / groups * k * k)
	l.weight = make([]float32, cout*(cin/groups)*k*k)
	if bn {
		std := math.Sqrt(2 / fanIn)
		for i := range l.weight {
			l.weight[i] = float32(w.rng.NormFloat64() * std)
		}
		l.gamma, l.beta = make([]float32, cout), make([]float32, cout)
		for c := range cout {
			g := math.Exp(w.rng.NormFloat64() * bnLogGammaStd)
			l.gamma[c] = float32(g)
			l.beta[c] = float32(g * (bnBetaOverGamma + w.rng.NormFloat64()*bnBetaStd))
		}
	} else {
		bound := 1 / math.Sqrt(fanIn)
		for i := range l.weight {
			l.weight[i] = float32((2*w.rng.Float64() - 1) * bound)
		}
		l.bias = make([]float32, cout)
	}
	w.layers[name] = l
	w.order = append(w.order, l)
	return l
}

// conv emits a layer's convolution with its batch norm folded in: while
// the layer's statistics are measured it is emitted raw (bypass), and
// before that with the identity statistics.
func (w *yoloxWriter) conv(l *convLayer, x string) string {
	weight, bias := l.weight, l.bias
	if l.bn && !l.bypass {
		per := len(l.weight) / l.cout
		weight = make([]float32, len(l.weight))
		bias = make([]float32, l.cout)
		for c := range l.cout {
			mean, variance := 0.0, 1.0
			if l.measured {
				mean, variance = l.mean[c], l.variance[c]
			}
			k := float64(l.gamma[c]) / math.Sqrt(variance+yoloxBNEps)
			for i := c * per; i < (c+1)*per; i++ {
				weight[i] = float32(float64(l.weight[i]) * k)
			}
			bias[c] = float32(-mean*k + float64(l.beta[c]))
		}
	}
	base := l.name
	if l.bn {
		base += ".conv"
	}
	l.input = x
	l.output = w.g.conv(base, x, weight, []int{l.cout, l.cin / l.grp, l.k, l.k}, bias,
		engine.ConvOptions{Stride: l.stride, Pad: (l.k - 1) / 2, Groups: l.grp})
	return l.output
}

// baseConv is YOLOX's BaseConv: convolution, batch norm, SiLU.
func (w *yoloxWriter) baseConv(name, x string, cin, cout, k, stride int) (string, error) {
	return w.baseConvGroups(name, x, cin, cout, k, stride, 1)
}

func (w *yoloxWriter) baseConvGroups(name, x string, cin, cout, k, stride, groups int) (string, error) {
	y := w.conv(w.layer(name, cin, cout, k, stride, groups, true), x)
	return w.g.act(name, y, nn.ActSiLU)
}

// conv3 is a 3×3 BaseConv, or YOLOX's DWConv (depthwise 3×3 then
// pointwise 1×1, both with SiLU) when the config asks for depthwise.
func (w *yoloxWriter) conv3(name, x string, cin, cout, stride int) (string, error) {
	if !w.cfg.Depthwise {
		return w.baseConv(name, x, cin, cout, 3, stride)
	}
	y, err := w.baseConvGroups(name+".dconv", x, cin, cin, 3, stride, cin)
	if err != nil {
		return "", err
	}
	return w.baseConv(name+".pconv", y, cin, cout, 1, 1)
}

// csp is YOLOX's CSPLayer with one bottleneck: two 1×1 branches, the
// bottleneck (1×1 then 3×3, with a residual Add when shortcut) on the
// first, Concat, and a 1×1 fusing conv.
func (w *yoloxWriter) csp(name, x string, cin, cout int, shortcut bool) (string, error) {
	hidden := cout / 2
	a, err := w.baseConv(name+".conv1", x, cin, hidden, 1, 1)
	if err != nil {
		return "", err
	}
	b, err := w.baseConv(name+".conv2", x, cin, hidden, 1, 1)
	if err != nil {
		return "", err
	}
	m, err := w.baseConv(name+".m.0.conv1", a, hidden, hidden, 1, 1)
	if err != nil {
		return "", err
	}
	if m, err = w.conv3(name+".m.0.conv2", m, hidden, hidden, 1); err != nil {
		return "", err
	}
	if shortcut {
		m = w.g.emit("Add", name+".m.0.add", []string{m, a})
	}
	cat := w.g.concat(name+".cat", 1, m, b)
	return w.baseConv(name+".conv3", cat, 2*hidden, cout, 1, 1)
}

// spp is YOLOX's SPPBottleneck: 1×1 halving, max-pools of 5, 9 and 13
// (stride 1, same size) concatenated with their input, 1×1 fusing conv.
func (w *yoloxWriter) spp(name, x string, cin, cout int) (string, error) {
	hidden := cin / 2
	y, err := w.baseConv(name+".conv1", x, cin, hidden, 1, 1)
	if err != nil {
		return "", err
	}
	parts := []string{y}
	for _, k := range []int64{5, 9, 13} {
		parts = append(parts, w.g.maxPool(fmt.Sprintf("%s.m.%d", name, k), y, k, 1, k/2))
	}
	cat := w.g.concat(name+".cat", 1, parts...)
	return w.baseConv(name+".conv2", cat, 4*hidden, cout, 1, 1)
}

// focus is YOLOX's space-to-depth stem: the four pixel phases of the input,
// (even rows, even columns), (odd, even), (even, odd), (odd, odd), stacked
// as 12 channels.
func (w *yoloxWriter) focus(x string) (string, error) {
	const end = math.MaxInt64 // what PyTorch writes for an open slice end
	var parts []string
	for _, p := range [][2]int64{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
		s, err := w.g.stridedSlice(fmt.Sprintf("backbone.stem.slice_%d%d", p[0], p[1]), x,
			[]int64{2, 3}, []int64{p[0], p[1]}, []int64{end, end}, []int64{2, 2})
		if err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	return w.g.concat("backbone.stem.space_to_depth", 1, parts...), nil
}

// network emits backbone, neck and head on the input x and returns the
// output tensor.
func (w *yoloxWriter) network(x string) (string, error) {
	c := max(1, int(math.Round(64*w.cfg.Width)))
	stage := func(name, x string, cin, cout int) (string, error) {
		y, err := w.conv3(name+".0", x, cin, cout, 2)
		if err != nil {
			return "", err
		}
		return w.csp(name+".1", y, cout, cout, true)
	}
	f, err := w.focus(x)
	if err != nil {
		return "", err
	}
	stem, err := w.baseConv("backbone.stem.conv", f, 12, c, 3, 1)
	if err != nil {
		return "", err
	}
	d2, err := stage("backbone.dark2", stem, c, 2*c)
	if err != nil {
		return "", err
	}
	d3, err := stage("backbone.dark3", d2, 2*c, 4*c)
	if err != nil {
		return "", err
	}
	d4, err := stage("backbone.dark4", d3, 4*c, 8*c)
	if err != nil {
		return "", err
	}
	d5, err := w.conv3("backbone.dark5.0", d4, 8*c, 16*c, 2)
	if err != nil {
		return "", err
	}
	if d5, err = w.spp("backbone.dark5.1", d5, 16*c, 16*c); err != nil {
		return "", err
	}
	if d5, err = w.csp("backbone.dark5.2", d5, 16*c, 16*c, false); err != nil {
		return "", err
	}

	// PAFPN: top-down, then bottom-up.
	lateral, err := w.baseConv("neck.lateral_conv0", d5, 16*c, 8*c, 1, 1)
	if err != nil {
		return "", err
	}
	up := w.g.upsample("neck.upsample0", lateral, 2, 2)
	p4, err := w.csp("neck.C3_p4", w.g.concat("neck.cat_p4", 1, up, d4), 16*c, 8*c, false)
	if err != nil {
		return "", err
	}
	reduce, err := w.baseConv("neck.reduce_conv1", p4, 8*c, 4*c, 1, 1)
	if err != nil {
		return "", err
	}
	up = w.g.upsample("neck.upsample1", reduce, 2, 2)
	out3, err := w.csp("neck.C3_p3", w.g.concat("neck.cat_p3", 1, up, d3), 8*c, 4*c, false)
	if err != nil {
		return "", err
	}
	down, err := w.conv3("neck.bu_conv2", out3, 4*c, 4*c, 2)
	if err != nil {
		return "", err
	}
	out4, err := w.csp("neck.C3_n3", w.g.concat("neck.cat_n3", 1, down, reduce), 8*c, 8*c, false)
	if err != nil {
		return "", err
	}
	if down, err = w.conv3("neck.bu_conv1", out4, 8*c, 8*c, 2); err != nil {
		return "", err
	}
	out5, err := w.csp("neck.C3_n4", w.g.concat("neck.cat_n4", 1, down, lateral), 16*c, 16*c, false)
	if err != nil {
		return "", err
	}

	hidden := max(1, int(math.Round(256*w.cfg.Width)))
	var rows []string
	for i, lv := range []struct {
		x  string
		ch int
	}{{out3, 4 * c}, {out4, 8 * c}, {out5, 16 * c}} {
		r, err := w.headLevel(i, lv.x, lv.ch, hidden)
		if err != nil {
			return "", err
		}
		rows = append(rows, r)
	}
	all := w.g.concat("head.cat_levels", 2, rows...)
	out := w.g.reserve("output")
	return w.g.op("Transpose", out, []string{all}, onnxgraph.AttrInts("perm", 0, 2, 1)), nil
}

// headLevel emits YOLOX's decoupled head on one pyramid level and returns
// its [N, 5+K, H·W] rows: raw box regression, sigmoid objectness, sigmoid
// class scores.
func (w *yoloxWriter) headLevel(i int, x string, cin, hidden int) (string, error) {
	name := func(part string) string { return fmt.Sprintf("head.%s.%d", part, i) }
	stem, err := w.baseConv(name("stems"), x, cin, hidden, 1, 1)
	if err != nil {
		return "", err
	}
	cls, reg := stem, stem
	for j := range 2 {
		if cls, err = w.conv3(fmt.Sprintf("%s.%d", name("cls_convs"), j), cls, hidden, hidden, 1); err != nil {
			return "", err
		}
	}
	for j := range 2 {
		if reg, err = w.conv3(fmt.Sprintf("%s.%d", name("reg_convs"), j), reg, hidden, hidden, 1); err != nil {
			return "", err
		}
	}
	prior := float32(-math.Log((1 - yoloxPriorProb) / yoloxPriorProb))
	pred := func(part, x string, cout int, bias float32) string {
		_, drawn := w.layers[name(part)]
		l := w.layer(name(part), hidden, cout, 1, 1, 1, false)
		if !drawn {
			for c := range l.bias {
				l.bias[c] = bias
			}
		}
		return w.conv(l, x)
	}
	box := pred("reg_preds", reg, 4, 0)
	obj := w.g.emit("Sigmoid", name("obj_score"), []string{pred("obj_preds", reg, 1, prior)})
	score := w.g.emit("Sigmoid", name("cls_score"), []string{pred("cls_preds", cls, w.cfg.Classes, prior)})
	cat := w.g.concat(name("cat"), 1, box, obj, score)
	return w.g.reshape(name("rows"), cat, 0, int64(5+w.cfg.Classes), -1), nil
}
