package quantize

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// DefaultJumpDB is the SQNR drop, against the worst of a tensor's quantized
// inputs, that marks the layer where error jumps: twice the noise power of
// one requantization at equal precision (3 dB).
const DefaultJumpDB = 6

// maxSQNR caps reported SQNR (an exact tensor has none, and JSON has no
// infinity).
const maxSQNR = 120

// InspectOptions configure Inspect.
type InspectOptions struct {
	Threads int
	// JumpDB is the drop that counts as a jump (DefaultJumpDB when 0).
	JumpDB float64
}

// TensorStat is the diagnosis of one quantized activation tensor.
type TensorStat struct {
	// Index is the tensor's position in graph order (the plot's x axis).
	Index int    `json:"index"`
	Name  string `json:"tensor"`
	// Producer and Op name the node writing the tensor ("input" for the
	// graph input).
	Producer string `json:"producer"`
	Op       string `json:"op"`
	// SQNR (dB) and Cosine compare the dequantized tensor of the QDQ model
	// with the float model's, error from upstream layers included.
	SQNR   float64 `json:"sqnr_db"`
	Cosine float64 `json:"cosine"`
	// SQNRAlone and CosineAlone measure the same tensor when its producing
	// layer is fed the float model's inputs (themselves quantized as the
	// layer sees them): the error this layer makes on its own.
	SQNRAlone   float64 `json:"sqnr_alone_db"`
	CosineAlone float64 `json:"cosine_alone"`
	// Calibrated is the range the 8-bit grid covers (scale and zero point
	// turned back into reals); Observed the float values seen here.
	Calibrated Range   `json:"calibrated"`
	Observed   Range   `json:"observed"`
	Scale      float32 `json:"scale"`
	ZeroPoint  int32   `json:"zero_point"`
	// Clipped is the share of float values outside the calibrated grid.
	Clipped float64 `json:"clipped"`
	// BiasShare is the share of the upstream error power that is a
	// constant offset per channel: what a bias correction would remove.
	BiasShare float64 `json:"bias_share"`
	// Jump is how far SQNR fell below the worst quantized tensor feeding
	// this one (dB; 0 for the input).
	Jump float64 `json:"jump_db"`
	// Inputs are the quantized tensors feeding this one's layer.
	Inputs []string `json:"inputs,omitempty"`
	// PreActivation marks a tensor only a LeakyReLU or SiLU reads: its lower
	// bound is fitted to the error after the activation, so its own SQNR
	// counts clipping the activation flattens; judge it by the activation's
	// output, the next tensor. It takes no part in Worst or FirstJump.
	PreActivation bool `json:"pre_activation,omitempty"`
}

// OutputStat compares one graph output of the QDQ model with the float one.
type OutputStat struct {
	Name   string  `json:"name"`
	SQNR   float64 `json:"sqnr_db"`
	Cosine float64 `json:"cosine"`
}

// Inspection is the per-tensor diagnosis of a QDQ model against its float
// model, computed with ONNX Runtime's reference QDQ arithmetic (no fusions):
// the fused integer kernels round the same values to within one step.
type Inspection struct {
	Images  int          `json:"images"`
	JumpDB  float64      `json:"jump_threshold_db"`
	Tensors []TensorStat `json:"tensors"`
	Outputs []OutputStat `json:"outputs"`
	// FirstJump is the index into Tensors of the first tensor, in graph
	// order, whose SQNR falls JumpDB or more below its inputs' (-1: none).
	FirstJump int `json:"first_jump"`
}

// qdqPair is one activation's QuantizeLinear → DequantizeLinear in a QDQ
// model.
type qdqPair struct {
	name     string // the tensor's name in the float model
	q, dq    *onnxpb.NodeProto
	floatIn  string // what the QuantizeLinear reads in the QDQ model
	producer *onnxpb.NodeProto
	scale    float32
	zp       int32
	lo, hi   int32 // the integer grid
}

// Inspect compares every quantized activation of the QDQ model q with the
// float model it was built from, over the given preprocessed inputs fed at
// input with shape: SQNR and cosine with the error from upstream and with
// the layer alone, calibrated against observed range, clipping, and where
// the error first jumps.
func Inspect(ctx context.Context, float, q *onnxpb.ModelProto, input string, shape []int64, inputs [][]float32, opts InspectOptions) (*Inspection, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("quantize: inspect: no inputs to compare on")
	}
	if opts.JumpDB == 0 {
		opts.JumpDB = DefaultJumpDB
	}
	pairs, err := activationPairs(float, q)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("quantize: inspect: the model has no quantized activations")
	}

	// Run 1: the QDQ model with every dequantized activation exposed.
	var upNames []string
	for _, o := range q.Graph.Output {
		upNames = append(upNames, o.Name)
	}
	outputs := len(upNames)
	for _, p := range pairs {
		upNames = append(upNames, p.dq.Output[0])
	}
	upModel, err := onnxgraph.ExposeOutputs(q, upNames[outputs:], onnxgraph.Float32)
	if err != nil {
		return nil, fmt.Errorf("quantize: inspect: %w", err)
	}
	upFetch, upPos := uniqueNames(upNames)
	up, err := newRunner(upModel, input, shape, upFetch, runnerOptions{Threads: opts.Threads, NoOptimize: true})
	if err != nil {
		return nil, err
	}
	defer up.close()

	// Run 2: the float model and, beside it, every layer fed float inputs.
	alone, refNames, aloneNames, err := aloneModel(float, q, pairs)
	if err != nil {
		return nil, err
	}
	aloneFetch, alonePos := uniqueNames(append(append([]string(nil), refNames...), aloneNames...))
	ar, err := newRunner(alone, input, shape, aloneFetch, runnerOptions{Threads: opts.Threads, NoOptimize: true})
	if err != nil {
		return nil, err
	}
	defer ar.close()

	upAcc := make([]errorAccumulator, len(upNames))
	aloneAcc := make([]errorAccumulator, len(pairs))
	observed := make([]Range, len(pairs))
	clipped := make([]float64, len(pairs))
	count := make([]float64, len(pairs))
	for i := range observed {
		observed[i] = Range{Min: math.Inf(1), Max: math.Inf(-1)}
	}
	for _, x := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quantize: inspect: %w", err)
		}
		u, uShapes, err := up.runShaped(x)
		if err != nil {
			return nil, err
		}
		a, err := ar.run(x)
		if err != nil {
			return nil, err
		}
		ref := func(i int) []float32 { return a[alonePos[i]] }
		for i := range upNames {
			if err := upAcc[i].add(upNames[i], ref(i), u[upPos[i]]); err != nil {
				return nil, err
			}
			upAcc[i].addChannels(ref(i), u[upPos[i]], uShapes[upPos[i]])
		}
		for i, p := range pairs {
			r := ref(outputs + i)
			if err := aloneAcc[i].add(p.name, r, a[alonePos[len(refNames)+i]]); err != nil {
				return nil, err
			}
			lo, hi := float64(p.lo-p.zp)*float64(p.scale), float64(p.hi-p.zp)*float64(p.scale)
			for _, v := range r {
				f := float64(v)
				observed[i].Min = math.Min(observed[i].Min, f)
				observed[i].Max = math.Max(observed[i].Max, f)
				if f < lo-float64(p.scale)/2 || f > hi+float64(p.scale)/2 {
					clipped[i]++
				}
			}
			count[i] += float64(len(r))
		}
	}

	ins := &Inspection{Images: len(inputs), JumpDB: opts.JumpDB, FirstJump: -1}
	fix := onnxgraph.NewIndex(float.Graph)
	for i := range outputs {
		ins.Outputs = append(ins.Outputs, OutputStat{Name: upNames[i], SQNR: upAcc[i].sqnr(), Cosine: upAcc[i].cosine()})
	}
	index := map[string]int{}
	for i, p := range pairs {
		s := TensorStat{Index: i, Name: p.name, Producer: "input", Op: "input",
			SQNR: upAcc[outputs+i].sqnr(), Cosine: upAcc[outputs+i].cosine(),
			SQNRAlone: aloneAcc[i].sqnr(), CosineAlone: aloneAcc[i].cosine(),
			Calibrated: Range{Min: float64(p.lo-p.zp) * float64(p.scale), Max: float64(p.hi-p.zp) * float64(p.scale)},
			Observed:   observed[i], Scale: p.scale, ZeroPoint: p.zp, Clipped: clipped[i] / math.Max(count[i], 1),
			BiasShare: upAcc[outputs+i].biasShare()}
		if p.producer != nil {
			s.Producer, s.Op = p.producer.Name, p.producer.OpType
		}
		_, s.PreActivation = consumerActivation(fix, p.name)
		index[p.dq.Output[0]] = i
		ins.Tensors = append(ins.Tensors, s)
	}
	feeds := segmentInputs(q, pairs)
	for i := range ins.Tensors {
		s := &ins.Tensors[i]
		worst := math.Inf(1)
		for _, dq := range feeds[i] {
			k := index[dq]
			s.Inputs = append(s.Inputs, ins.Tensors[k].Name)
			worst = math.Min(worst, ins.Tensors[k].SQNR)
		}
		if !math.IsInf(worst, 1) {
			s.Jump = worst - s.SQNR
		}
		if ins.FirstJump < 0 && s.Jump >= opts.JumpDB && !s.PreActivation {
			ins.FirstJump = i
		}
	}
	return ins, nil
}

// uniqueNames drops repeated names and returns, for each original
// position, the index of its name in the unique list.
func uniqueNames(names []string) ([]string, []int) {
	var list []string
	pos := make([]int, len(names))
	at := map[string]int{}
	for i, n := range names {
		k, ok := at[n]
		if !ok {
			k = len(list)
			at[n] = k
			list = append(list, n)
		}
		pos[i] = k
	}
	return list, pos
}

// activationPairs finds every QuantizeLinear → DequantizeLinear on an
// activation of q, in graph order, named as the float model names the
// tensor: the dequantized output keeps the float name, except on the graph
// input, whose QuantizeLinear reads it directly.
func activationPairs(float, q *onnxpb.ModelProto) ([]qdqPair, error) {
	fix := onnxgraph.NewIndex(float.Graph)
	ix := onnxgraph.NewIndex(q.Graph)
	var pairs []qdqPair
	for _, d := range q.Graph.Node {
		if d.OpType != "DequantizeLinear" || len(d.Input) < 2 {
			continue
		}
		qn := ix.Producer[d.Input[0]]
		if qn == nil || qn.OpType != "QuantizeLinear" || ix.IsConstant(qn.Input[0]) {
			continue
		}
		p := qdqPair{q: qn, dq: d, floatIn: qn.Input[0], producer: ix.Producer[qn.Input[0]], name: d.Output[0]}
		if ix.IsGraphInput(qn.Input[0]) {
			p.name = qn.Input[0]
		}
		if fix.Producer[p.name] == nil && !fix.IsGraphInput(p.name) {
			return nil, fmt.Errorf("quantize: inspect: quantized tensor %q is not in the float model (was the QDQ model built from it?)", p.name)
		}
		scale, err := scalarOf(ix, qn, 1)
		if err != nil {
			return nil, err
		}
		p.scale = float32(scale)
		p.lo, p.hi = 0, 255
		if len(qn.Input) > 2 && qn.Input[2] != "" {
			zt := ix.Init[qn.Input[2]]
			if zt == nil {
				return nil, fmt.Errorf("quantize: inspect: %s: zero point %q is not a constant", onnxgraph.Describe(qn), qn.Input[2])
			}
			switch zt.DataType {
			case onnxgraph.Int8:
				p.lo, p.hi = -128, 127
				if len(zt.RawData) > 0 {
					p.zp = int32(int8(zt.RawData[0]))
				} else if len(zt.Int32Data) > 0 {
					p.zp = zt.Int32Data[0]
				}
			default:
				if len(zt.RawData) > 0 {
					p.zp = int32(zt.RawData[0])
				} else if len(zt.Int32Data) > 0 {
					p.zp = zt.Int32Data[0]
				}
			}
		}
		pairs = append(pairs, p)
	}
	return pairs, nil
}

// scalarOf reads a node's constant scalar float input.
func scalarOf(ix *onnxgraph.Index, n *onnxpb.NodeProto, i int) (float64, error) {
	if len(n.Input) <= i {
		return 0, fmt.Errorf("quantize: inspect: %s has no input %d", onnxgraph.Describe(n), i)
	}
	t := ix.Init[n.Input[i]]
	if t == nil {
		return 0, fmt.Errorf("quantize: inspect: %s: %q is not a constant", onnxgraph.Describe(n), n.Input[i])
	}
	v, err := onnxgraph.Float32s(t)
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("quantize: inspect: %s: %q is not a scalar float (%v)", onnxgraph.Describe(n), n.Input[i], err)
	}
	return float64(v[0]), nil
}

// refPrefix and alonePrefix rename the copies aloneModel adds.
const (
	refPrefix   = "ref/"
	alonePrefix = "alone/"
)

// aloneModel returns q joined with a renamed copy of the float model, in
// which every activation QuantizeLinear reads the float model's value of
// its tensor instead of the QDQ chain's, and every producer's own result
// gets a second Q/DQ whose output is exposed: each layer's output computed
// from float inputs, quantized as in q. It returns the model, the float
// reference names (q's graph outputs, then each pair's tensor) and the
// "alone" names (one per pair).
func aloneModel(float, q *onnxpb.ModelProto, pairs []qdqPair) (*onnxpb.ModelProto, []string, []string, error) {
	m := onnxgraph.Clone(q)
	g := m.Graph
	ref := onnxgraph.Clone(float).Graph
	input := map[string]bool{}
	for _, v := range ref.Input {
		input[v.Name] = true
	}
	for _, t := range ref.Initializer {
		delete(input, t.Name)
	}
	rename := func(s string) string {
		if s == "" || input[s] {
			return s
		}
		return refPrefix + s
	}
	for _, n := range ref.Node {
		n.Name = refPrefix + n.Name
		for i := range n.Input {
			n.Input[i] = rename(n.Input[i])
		}
		for i := range n.Output {
			n.Output[i] = rename(n.Output[i])
		}
	}
	for _, t := range ref.Initializer {
		t.Name = refPrefix + t.Name
	}
	g.Node = append(g.Node, ref.Node...)
	g.Initializer = append(g.Initializer, ref.Initializer...)

	var refNames, aloneNames []string
	for _, o := range q.Graph.Output {
		refNames = append(refNames, rename(o.Name))
	}
	byName := map[string]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		byName[n.Name] = n
	}
	var added []*onnxpb.NodeProto
	for _, p := range pairs {
		refNames = append(refNames, rename(p.name))
		if p.producer == nil { // the graph input: alone is the chain itself
			aloneNames = append(aloneNames, p.dq.Output[0])
			continue
		}
		qn := byName[p.q.Name]
		qn.Input[0] = rename(p.name)
		quantized, out := alonePrefix+p.name+"_quantized", alonePrefix+p.name
		added = append(added,
			onnxgraph.NewNode("QuantizeLinear", alonePrefix+p.q.Name, append([]string{p.floatIn}, p.q.Input[1:]...), []string{quantized}),
			onnxgraph.NewNode("DequantizeLinear", alonePrefix+p.dq.Name, append([]string{quantized}, p.dq.Input[1:]...), []string{out}))
		aloneNames = append(aloneNames, out)
	}
	g.Node = append(g.Node, added...)
	if err := onnxgraph.TopoSort(g); err != nil {
		return nil, nil, nil, fmt.Errorf("quantize: inspect: %w", err)
	}
	m, err := onnxgraph.ExposeOutputs(m, append(append([]string(nil), refNames...), aloneNames...), onnxgraph.Float32)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("quantize: inspect: %w", err)
	}
	return m, refNames, aloneNames, nil
}

// segmentInputs lists, for each pair, the dequantized activations its
// producer reads, looking through float ops between them (a SiLU kept in
// float, a reshape in the tail) but not through constants.
func segmentInputs(q *onnxpb.ModelProto, pairs []qdqPair) [][]string {
	ix := onnxgraph.NewIndex(q.Graph)
	isDQ := map[string]bool{}
	for _, p := range pairs {
		isDQ[p.dq.Output[0]] = true
	}
	memo := map[string][]string{}
	var feeding func(t string, seen map[string]bool) []string
	feeding = func(t string, seen map[string]bool) []string {
		if isDQ[t] {
			return []string{t}
		}
		if r, ok := memo[t]; ok {
			return r
		}
		n := ix.Producer[t]
		if n == nil || seen[t] || n.OpType == "DequantizeLinear" {
			return nil // graph input, constant, or a weight's DequantizeLinear
		}
		seen[t] = true
		var out []string
		have := map[string]bool{}
		for _, in := range n.Input {
			if in == "" || ix.IsConstant(in) {
				continue
			}
			for _, f := range feeding(in, seen) {
				if !have[f] {
					have[f] = true
					out = append(out, f)
				}
			}
		}
		memo[t] = out
		return out
	}
	res := make([][]string, len(pairs))
	for i, p := range pairs {
		if p.producer == nil {
			continue
		}
		have := map[string]bool{}
		for _, in := range p.producer.Input {
			if in == "" || ix.IsConstant(in) {
				continue
			}
			for _, f := range feeding(in, map[string]bool{}) {
				if !have[f] {
					have[f] = true
					res[i] = append(res[i], f)
				}
			}
		}
	}
	return res
}

// errorAccumulator pools a reference x and an approximation y over images.
type errorAccumulator struct {
	xx, yy, xy, noise float64
	// per-channel sums of the error and value counts (NCHW tensors).
	chanErr []float64
	chanN   []float64
}

// addChannels accumulates the per-channel error of an [1, C, …] tensor.
func (a *errorAccumulator) addChannels(x, y []float32, shape []int64) {
	if len(shape) < 2 || shape[0] != 1 || shape[1] <= 0 || len(x) != len(y) {
		return
	}
	c := int(shape[1])
	if a.chanErr == nil {
		a.chanErr, a.chanN = make([]float64, c), make([]float64, c)
	}
	if len(a.chanErr) != c {
		return
	}
	per := len(x) / c
	for ch := range c {
		s := 0.0
		for i := ch * per; i < (ch+1)*per; i++ {
			s += float64(y[i]) - float64(x[i])
		}
		a.chanErr[ch] += s
		a.chanN[ch] += float64(per)
	}
}

// biasShare is the share of the error power that is a constant offset per
// channel (what bias correction removes).
func (a *errorAccumulator) biasShare() float64 {
	if a.noise == 0 || a.chanErr == nil {
		return 0
	}
	dc := 0.0
	for ch, s := range a.chanErr {
		if a.chanN[ch] > 0 {
			dc += s * s / a.chanN[ch]
		}
	}
	return math.Min(1, dc/a.noise)
}

func (a *errorAccumulator) add(name string, x, y []float32) error {
	if len(x) != len(y) {
		return fmt.Errorf("quantize: inspect: tensor %q has %d values in the float model and %d in the quantized one", name, len(x), len(y))
	}
	for i := range x {
		xv, yv := float64(x[i]), float64(y[i])
		a.xx += xv * xv
		a.yy += yv * yv
		a.xy += xv * yv
		a.noise += (xv - yv) * (xv - yv)
	}
	return nil
}

// sqnr is the signal-to-quantization-noise ratio in dB, capped at maxSQNR.
func (a *errorAccumulator) sqnr() float64 {
	if a.noise == 0 {
		return maxSQNR
	}
	if a.xx == 0 {
		return -maxSQNR
	}
	return math.Max(-maxSQNR, math.Min(maxSQNR, 10*math.Log10(a.xx/a.noise)))
}

func (a *errorAccumulator) cosine() float64 {
	if a.xx == 0 && a.yy == 0 {
		return 1
	}
	if a.xx == 0 || a.yy == 0 {
		return 0
	}
	return a.xy / math.Sqrt(a.xx*a.yy)
}

// Worst returns the indexes of the n tensors with the lowest SQNR alone:
// where the error is made.
func (ins *Inspection) Worst(n int) []int {
	var idx []int
	for i, s := range ins.Tensors {
		if !s.PreActivation {
			idx = append(idx, i)
		}
	}
	for i := 1; i < len(idx); i++ { // insertion sort: stable, short lists
		for k := i; k > 0 && ins.Tensors[idx[k]].SQNRAlone < ins.Tensors[idx[k-1]].SQNRAlone; k-- {
			idx[k], idx[k-1] = idx[k-1], idx[k]
		}
	}
	return idx[:min(n, len(idx))]
}

// WriteText prints the diagnosis as a table, then the first jump, the
// layers that make the most error and the outputs.
func (ins *Inspection) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nper-tensor diagnosis on %d images (ONNX Runtime's QDQ reference arithmetic):\n", ins.Images)
	b.WriteString("  SQNR/cos: against fp32 with upstream error; alone: the layer fed fp32 inputs; bias: share of the error that is a constant per channel; jump: dB below its worst quantized input\n")
	b.WriteString("  op→act: read only by a LeakyReLU/SiLU, range fitted to the error after it (judge it by the next row)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\ttensor\top\tSQNR dB\tcos\talone dB\tcos alone\tcalibrated\tobserved\tclipped\tbias\tjump dB\t")
	for i, s := range ins.Tensors {
		mark := ""
		if i == ins.FirstJump {
			mark = "  <- first jump"
		}
		op := s.Op
		if s.PreActivation {
			op += "→act" // judged after the activation: see the next row
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%.1f\t%.5f\t%.1f\t%.5f\t[%.3g, %.3g]\t[%.3g, %.3g]\t%.2g%%\t%.0f%%\t%+.1f\t%s\n",
			s.Index, shorten(s.Name, 48), op, s.SQNR, s.Cosine, s.SQNRAlone, s.CosineAlone,
			s.Calibrated.Min, s.Calibrated.Max, s.Observed.Min, s.Observed.Max, 100*s.Clipped, 100*s.BiasShare, s.Jump, mark)
	}
	tw.Flush()
	if ins.FirstJump >= 0 {
		s := ins.Tensors[ins.FirstJump]
		fmt.Fprintf(&b, "  first jump: #%d %s (%s %s): SQNR %.1f dB, %.1f dB below its inputs %s; alone %.1f dB\n",
			s.Index, s.Name, s.Op, s.Producer, s.SQNR, s.Jump, strings.Join(s.Inputs, ", "), s.SQNRAlone)
	} else {
		fmt.Fprintf(&b, "  no jump of %.0f dB or more: the error grows gradually\n", ins.JumpDB)
	}
	b.WriteString("  most error made alone:")
	for _, i := range ins.Worst(5) {
		s := ins.Tensors[i]
		fmt.Fprintf(&b, " #%d %s (%s) %.1f dB;", s.Index, shorten(s.Name, 40), s.Op, s.SQNRAlone)
	}
	b.WriteString("\n  outputs:")
	for _, o := range ins.Outputs {
		fmt.Fprintf(&b, " %s SQNR %.1f dB cos %.5f;", o.Name, o.SQNR, o.Cosine)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
