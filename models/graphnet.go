package models

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// GraphModule runs a GraphConfig on the engine. Its parameters are made
// fresh (Kaiming-normal convolutions, PyTorch's defaults elsewhere) and
// named by node, "<node>.weight"; a pretrained checkpoint or a trained one
// fills them like any other module's.
type GraphModule struct {
	Config *GraphConfig
	// Layers holds the tensors of each node, parallel to Config.Nodes.
	Layers []GraphLayer
}

// GraphLayer is what one node owns: a convolution, a batch norm, a linear
// layer's weight and bias, or a constant. Nodes without tensors leave it
// empty.
type GraphLayer struct {
	Conv     *nn.Conv2d
	Norm     *nn.BatchNorm2d
	Weight   *engine.Tensor
	Bias     *engine.Tensor
	Constant *engine.Tensor
}

var _ nn.Module = (*GraphModule)(nil)

// NewGraphModule builds the module of a validated graph.
func NewGraphModule(rng *rand.Rand, g *GraphConfig) *GraphModule {
	m := &GraphModule{Config: g, Layers: make([]GraphLayer, len(g.Nodes))}
	for i, n := range g.Nodes {
		m.Layers[i] = newGraphLayer(rng, n)
	}
	return m
}

// AddNode appends a node to the graph with fresh tensors and returns its
// layer, for an importer to fill with the source's weights.
func (m *GraphModule) AddNode(rng *rand.Rand, n GraphNode) *GraphLayer {
	m.Config.Nodes = append(m.Config.Nodes, n)
	m.Layers = append(m.Layers, newGraphLayer(rng, n))
	return &m.Layers[len(m.Layers)-1]
}

// RunNode runs node i in inference mode on the tensors in env and adds its
// outputs to env.
func (m *GraphModule) RunNode(i int, env map[string]*engine.Tensor) {
	m.node(&pass{}, false, i, env)
}

func newGraphLayer(rng *rand.Rand, n GraphNode) GraphLayer {
	var l GraphLayer
	switch n.Op {
	case OpConv:
		w := engine.Zeros(n.Out, n.In/n.Groups, n.Kernel[0], n.Kernel[1])
		nn.KaimingNormal(rng, w, n.Out*n.Kernel[0]*n.Kernel[1])
		l.Conv = &nn.Conv2d{Weight: w.SetRequiresGrad(true), Options: engine.ConvOptions{Stride: n.Stride, Dilation: n.Dilation, Groups: n.Groups}}
		if uniformPad(n.Pad) {
			l.Conv.Options.Pad = n.Pad[0]
		}
		if n.Bias {
			l.Conv.Bias = engine.Zeros(n.Out).SetRequiresGrad(true)
		}
	case OpBatchNorm:
		l.Norm = nn.NewBatchNorm2d(n.Channels)
		l.Norm.State.Eps, l.Norm.State.Momentum = n.Eps, n.Momentum
	case OpLinear:
		l.Weight = engine.Zeros(n.In, n.Out)
		nn.KaimingUniform(rng, l.Weight, n.In)
		l.Weight.SetRequiresGrad(true)
		if n.Bias {
			l.Bias = engine.Zeros(n.Out).SetRequiresGrad(true)
		}
	case OpConstant:
		l.Constant = engine.Zeros(n.Dims...)
	}
	return l
}

func uniformPad(p []int) bool { return p[0] == p[1] && p[0] == p[2] && p[0] == p[3] }

// Visit implements nn.Module: "<node>.weight", "<node>.bias",
// "<node>.running_mean", "<node>.running_var" and "<node>.value".
func (m *GraphModule) Visit(prefix string, v nn.Visitor) {
	for i, n := range m.Config.Nodes {
		l := m.Layers[i]
		p := nn.Join(prefix, n.Name)
		switch {
		case l.Conv != nil:
			l.Conv.Visit(p, v)
		case l.Norm != nil:
			l.Norm.Visit(p, v)
		case l.Weight != nil:
			v(nn.Join(p, "weight"), l.Weight, true)
			if l.Bias != nil {
				v(nn.Join(p, "bias"), l.Bias, true)
			}
		case l.Constant != nil:
			v(nn.Join(p, "value"), l.Constant, false)
		}
	}
}

// Forward runs the graph in inference mode on its inputs, in the order of
// Config.Inputs, and returns its outputs in the order of Config.Outputs.
func (m *GraphModule) Forward(inputs ...*engine.Tensor) []*engine.Tensor {
	return m.forward(&pass{}, false, inputs)
}

// ForwardTensors runs the graph and returns every tensor it wrote, by name
// (inputs included): what an import check compares.
func (m *GraphModule) ForwardTensors(inputs ...*engine.Tensor) map[string]*engine.Tensor {
	env := map[string]*engine.Tensor{}
	m.run(&pass{}, false, inputs, env)
	return env
}

// forward runs the graph; frozen runs batch norms on their running
// statistics even in training.
func (m *GraphModule) forward(p *pass, frozen bool, inputs []*engine.Tensor) []*engine.Tensor {
	env := map[string]*engine.Tensor{}
	m.run(p, frozen, inputs, env)
	out := make([]*engine.Tensor, len(m.Config.Outputs))
	for i, port := range m.Config.Outputs {
		out[i] = env[port.Name]
	}
	return out
}

func (m *GraphModule) run(p *pass, frozen bool, inputs []*engine.Tensor, env map[string]*engine.Tensor) {
	g := m.Config
	if len(inputs) != len(g.Inputs) {
		panic(&engine.OpError{Op: "models.GraphModule", Shapes: shapes(inputs), Err: engine.ErrShape,
			Detail: fmt.Sprintf("%d inputs given, the graph reads %d", len(inputs), len(g.Inputs))})
	}
	for i, port := range g.Inputs {
		env[port.Name] = inputs[i]
	}
	training := p.training && !frozen
	for i := range g.Nodes {
		m.node(p, training, i, env)
	}
}

func shapes(ts []*engine.Tensor) [][]int {
	s := make([][]int, len(ts))
	for i, t := range ts {
		s[i] = t.Shape()
	}
	return s
}

// node runs one node. An engine shape error inside it is annotated with
// the node's name and op and passed on (not recovered: the command line's
// one recover point reports it).
func (m *GraphModule) node(p *pass, training bool, i int, env map[string]*engine.Tensor) {
	n := m.Config.Nodes[i]
	l := m.Layers[i]
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(*engine.OpError); ok {
				e.Detail = fmt.Sprintf("graph node %q (%s): %s", n.Name, n.Op, e.Detail)
			}
			panic(r)
		}
	}()
	in := make([]*engine.Tensor, len(n.Inputs))
	for k, name := range n.Inputs {
		in[k] = env[name]
	}
	var out []*engine.Tensor
	one := func(t *engine.Tensor) { out = []*engine.Tensor{t} }
	switch n.Op {
	case OpConv:
		x := in[0]
		if !uniformPad(n.Pad) {
			x = engine.Pad2d(x, n.Pad[0], n.Pad[1], n.Pad[2], n.Pad[3])
		}
		one(p.conv(l.Conv, x))
	case OpBatchNorm:
		one(l.Norm.Forward(in[0], training))
	case OpReLU:
		one(engine.ReLU(in[0]))
	case OpLeakyReLU:
		one(engine.LeakyReLU(in[0], n.Alpha))
	case OpSigmoid:
		one(engine.Sigmoid(in[0]))
	case OpSiLU:
		one(engine.SiLU(in[0]))
	case OpHardSwish:
		one(engine.HardSwish(in[0]))
	case OpHardSigmoid:
		one(engine.Clamp(engine.AddScalar(engine.MulScalar(in[0], n.Alpha), n.Beta), 0, 1))
	case OpClip:
		one(clip(in[0], n.Min, n.Max))
	case OpTanh:
		one(engine.Tanh(in[0]))
	case OpAdd:
		one(engine.Add(in[0], in[1]))
	case OpSub:
		one(engine.Sub(in[0], in[1]))
	case OpMul:
		one(engine.Mul(in[0], in[1]))
	case OpDiv:
		one(engine.Div(in[0], in[1]))
	case OpConstant:
		one(l.Constant)
	case OpConcat:
		one(engine.Concat(n.Axis, in...))
	case OpSplit:
		out = engine.Split(in[0], n.Axis, n.Sizes...)
	case OpSlice:
		one(slice(in[0], n))
	case OpTranspose:
		one(engine.Permute(in[0], n.Perm...))
	case OpReshape:
		one(reshape(in[0], n))
	case OpFlatten:
		s := in[0].Shape()
		axis := min(n.Axis, len(s))
		lead := 1
		for _, d := range s[:axis] {
			lead *= d
		}
		one(engine.Reshape(in[0], lead, -1))
	case OpMaxPool:
		one(engine.MaxPool2d(in[0], engine.PoolOptions{Kernel: n.Kernel[0], Stride: n.Stride, Pad: n.Pad[0]}))
	case OpAvgPool:
		one(avgPool(in[0], n))
	case OpGlobalAvgPool:
		one(engine.GlobalAvgPool2d(in[0]))
	case OpPad:
		one(engine.Pad2d(in[0], n.Pad[0], n.Pad[1], n.Pad[2], n.Pad[3]))
	case OpResize:
		one(resize(in[0], n))
	case OpLinear:
		y := engine.MatMul(in[0], l.Weight)
		if l.Bias != nil {
			y = engine.Add(y, l.Bias)
		}
		one(y)
	case OpIdentity:
		one(in[0])
	default:
		panic(&engine.OpError{Op: "models.GraphModule", Err: engine.ErrShape, Detail: fmt.Sprintf("node %q has op %q, which the graph runner does not know", n.Name, n.Op)})
	}
	for k, name := range n.Outputs {
		env[name] = out[k]
	}
}

func clip(x *engine.Tensor, lo, hi *float32) *engine.Tensor {
	const inf = float32(3.4028234663852886e38)
	l, h := -inf, inf
	if lo != nil {
		l = *lo
	}
	if hi != nil {
		h = *hi
	}
	if l == 0 && h == inf {
		return engine.ReLU(x)
	}
	return engine.Clamp(x, l, h)
}

// slice resolves Python-style start and end against the input's size.
func slice(x *engine.Tensor, n GraphNode) *engine.Tensor {
	axis := n.Axis
	if axis < 0 {
		axis += x.Rank()
	}
	size := x.Dim(axis)
	start, end := n.Start, size
	if n.End != nil {
		end = *n.End
	}
	if start < 0 {
		start += size
	}
	if end < 0 {
		end += size
	}
	start, end = max(0, min(start, size)), max(0, min(end, size))
	return engine.SliceStep(x, axis, start, end, n.Step)
}

func reshape(x *engine.Tensor, n GraphNode) *engine.Tensor {
	in := x.Shape()
	shape := make([]int, len(n.Shape))
	for i, d := range n.Shape {
		for _, f := range d.From {
			if f >= len(in) {
				panic(&engine.OpError{Op: "Reshape", Shapes: [][]int{in}, Err: engine.ErrShape,
					Detail: fmt.Sprintf("target dimension %s reads input dimension %d of a rank-%d input", d, f, len(in))})
			}
		}
		shape[i] = d.resolve(in)
	}
	return engine.Reshape(x, shape...)
}

// avgPool averages windows; without CountIncludePad padded positions do
// not count, which is the padded average divided by the padded average of
// ones (the fraction of each window inside the input).
func avgPool(x *engine.Tensor, n GraphNode) *engine.Tensor {
	opt := engine.PoolOptions{Kernel: n.Kernel[0], Stride: n.Stride, Pad: n.Pad[0]}
	y := engine.AvgPool2d(x, opt)
	if n.CountIncludePad || n.Pad[0] == 0 {
		return y
	}
	var frac *engine.Tensor
	engine.NoGrad(func() {
		frac = engine.AvgPool2d(engine.Full(1, 1, 1, x.Dim(2), x.Dim(3)), opt)
	})
	return engine.Div(y, frac)
}

func resize(x *engine.Tensor, n GraphNode) *engine.Tensor {
	if x.Rank() != 4 {
		panic(&engine.OpError{Op: "Resize", Shapes: [][]int{x.Shape()}, Err: engine.ErrShape, Detail: "input must be NCHW"})
	}
	oh := int(float64(x.Dim(2)) * n.Scale[0])
	ow := int(float64(x.Dim(3)) * n.Scale[1])
	if n.Mode == ResizeNearest {
		return engine.UpsampleNearest(x, oh, ow)
	}
	mode, _ := engine.ParseCoordinateMode(n.Coordinates)
	return engine.ResizeBilinear(x, oh, ow, engine.ResizeOptions{Mode: mode, ScaleH: n.Scale[0], ScaleW: n.Scale[1]})
}

// portShapes checks graph outputs against their declared channels and
// strides for an input of h×w pixels.
func checkPorts(what string, ports []GraphPort, outs []*engine.Tensor, h, w int) {
	for i, p := range ports {
		t := outs[i]
		ok := t != nil && t.Rank() == 4 && t.Dim(1) == p.Channels &&
			t.Dim(2) == ceilDiv(h, p.Stride) && t.Dim(3) == ceilDiv(w, p.Stride)
		if !ok {
			var s [][]int
			if t != nil {
				s = [][]int{t.Shape()}
			}
			panic(&engine.OpError{Op: what, Shapes: s, Err: engine.ErrShape,
				Detail: fmt.Sprintf("output %q should be [N, %d, %d, %d] (stride %d of a %dx%d input)", p.Name, p.Channels, ceilDiv(h, p.Stride), ceilDiv(w, p.Stride), p.Stride, h, w)})
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// GraphBackbone is an imported backbone: a graph from the image to C3, C4
// and C5.
type GraphBackbone struct {
	Graph *GraphModule
}

// OutChannels implements Backbone.
func (b *GraphBackbone) OutChannels() [3]int {
	var c [3]int
	for i, p := range b.Graph.Config.Outputs[:3] {
		c[i] = p.Channels
	}
	return c
}

func (b *GraphBackbone) forward(p *pass, x *engine.Tensor) [3]*engine.Tensor {
	outs := b.Graph.forward(p, p.frozen, []*engine.Tensor{x})
	checkPorts("models.GraphBackbone", b.Graph.Config.Outputs, outs, x.Dim(2), x.Dim(3))
	return [3]*engine.Tensor(outs)
}

// Visit implements nn.Module.
func (b *GraphBackbone) Visit(prefix string, v nn.Visitor) { b.Graph.Visit(prefix, v) }

// graphPortsAreLevels checks that ports are three maps at strides 8, 16, 32.
func graphPortsAreLevels(ports []GraphPort) bool {
	return len(ports) == 3 && slices.Equal([]int{ports[0].Stride, ports[1].Stride, ports[2].Stride}, []int{8, 16, 32})
}
