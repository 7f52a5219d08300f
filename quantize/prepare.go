package quantize

import (
	"errors"
	"fmt"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// perChannelOpset is the first opset whose DequantizeLinear takes an axis.
const perChannelOpset = 13

// minQDQOpset is the first opset with QuantizeLinear/DequantizeLinear.
const minQDQOpset = 10

// Prepared is a float model made ready for calibration and QDQ insertion.
type Prepared struct {
	Model *onnxpb.ModelProto
	// PerChannel reports whether weights can be quantized per channel
	// (the model is at opset 13 or newer after any upgrade).
	PerChannel bool
	// Notes say what preparation changed or could not do.
	Notes []string
	// Input is the model's single image input.
	Input string
	// InputShape is the input's declared shape; unknown dimensions are -1.
	InputShape []int64
}

// ErrNoImageInput reports a model without exactly one 4-D float input.
var ErrNoImageInput = errors.New("quantize: model needs exactly one float NCHW image input")

// Prepare cleans up a float model for quantization without changing what it
// computes: initializers listed as inputs are dropped, Constant nodes become
// initializers, BatchNormalization is folded into the preceding Conv,
// unnamed nodes get names, nodes are sorted, and a model older than opset 13
// is upgraded so weights can be quantized per channel. When the upgrade is
// impossible and wantPerChannel is set, weights fall back to per-tensor and a
// note says why. m is not modified.
func Prepare(m *onnxpb.ModelProto, name string, wantPerChannel bool) (*Prepared, error) {
	c := onnxgraph.Clone(m)
	g := c.Graph
	p := &Prepared{}
	onnxgraph.RemoveInitializerInputs(c)
	onnxgraph.ConstantsToInitializers(g)
	if err := onnxgraph.TopoSort(g); err != nil {
		return nil, fmt.Errorf("quantize: %s: %w", name, err)
	}
	folded, err := onnxgraph.FoldBatchNorm(g)
	if err != nil {
		return nil, fmt.Errorf("quantize: %s: %w", name, err)
	}
	if folded > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("folded %d BatchNormalization nodes into their Conv", folded))
	}
	onnxgraph.NameNodes(g)
	onnxgraph.PruneValueInfo(g)

	opset := onnxgraph.Opset(c)
	if opset < perChannelOpset {
		up, err := onnxgraph.UpgradeOpset(c, perChannelOpset)
		switch {
		case err == nil:
			p.Notes = append(p.Notes, fmt.Sprintf("upgraded the graph from opset %d to %d for per-channel weights", opset, perChannelOpset))
			c = up
		case opset >= minQDQOpset:
			if wantPerChannel {
				p.Notes = append(p.Notes, fmt.Sprintf("weights quantized per tensor: per-channel needs opset %d and this opset-%d model cannot be upgraded: %v", perChannelOpset, opset, err))
			}
		default:
			return nil, fmt.Errorf("quantize: %s: QuantizeLinear needs opset %d or newer and this opset-%d model cannot be upgraded: %w", name, minQDQOpset, opset, err)
		}
	}
	p.PerChannel = wantPerChannel && onnxgraph.Opset(c) >= perChannelOpset
	p.Model = c

	var inputs []*onnxpb.ValueInfoProto
	init := map[string]bool{}
	for _, t := range c.Graph.Initializer {
		init[t.Name] = true
	}
	for _, v := range c.Graph.Input {
		if !init[v.Name] {
			inputs = append(inputs, v)
		}
	}
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%w: %s has %d inputs", ErrNoImageInput, name, len(inputs))
	}
	elem, dims, ok := onnxgraph.TensorType(inputs[0])
	if !ok || elem != onnxgraph.Float32 || len(dims) != 4 {
		return nil, fmt.Errorf("%w: %s input %q is %s%v", ErrNoImageInput, name, inputs[0].Name, onnxgraph.DataTypeName(elem), dims)
	}
	p.Input = inputs[0].Name
	p.InputShape = dims
	return p, nil
}
