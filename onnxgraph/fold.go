package onnxgraph

import (
	"fmt"
	"math"

	"github.com/gidedge/gidedge/onnxpb"
)

// FoldBatchNorm merges every BatchNormalization that directly follows a Conv
// into that Conv's weights and bias, when the Conv's output feeds only the
// BatchNormalization and every parameter is an initializer:
//
//	k = gamma / sqrt(var + epsilon)   (per output channel)
//	W' = W * k, b' = (b - mean) * k + beta
//
// Inference results are unchanged (up to float rounding) and quantization
// then sees the weights that actually run. It returns how many it folded.
func FoldBatchNorm(g *onnxpb.GraphProto) (int, error) {
	ix := NewIndex(g)
	namer := NewNamer(g)
	remove := map[*onnxpb.NodeProto]bool{}
	folded := 0
	for _, bn := range g.Node {
		if bn.OpType != "BatchNormalization" || bn.Domain != "" || len(bn.Input) != 5 || len(bn.Output) != 1 {
			continue
		}
		conv := ix.Producer[bn.Input[0]]
		if conv == nil || conv.OpType != "Conv" || conv.Domain != "" || len(ix.Consumers[conv.Output[0]]) != 1 || ix.IsGraphOutput(conv.Output[0]) {
			continue
		}
		if AttrIntOr(bn, "training_mode", 0) != 0 || AttrIntOr(bn, "spatial", 1) != 1 {
			continue
		}
		w := ix.Init[conv.Input[1]]
		if w == nil {
			continue
		}
		var params [4]*onnxpb.TensorProto
		ok := true
		for i := range params {
			params[i] = ix.Init[bn.Input[1+i]]
			ok = ok && params[i] != nil
		}
		if !ok {
			continue
		}
		var bias *onnxpb.TensorProto
		if len(conv.Input) > 2 && conv.Input[2] != "" {
			if bias = ix.Init[conv.Input[2]]; bias == nil {
				continue
			}
		}
		newW, newB, err := foldOne(conv, bn, w, bias, params)
		if err != nil {
			return folded, err
		}
		newW.Name = namer.Name(w.Name + "_bnfolded")
		newB.Name = namer.Name(conv.Name + "_bias_bnfolded")
		if conv.Name == "" {
			newB.Name = namer.Name(w.Name + "_bias_bnfolded")
		}
		g.Initializer = append(g.Initializer, newW, newB)
		conv.Input = []string{conv.Input[0], newW.Name, newB.Name}
		conv.Output[0] = bn.Output[0]
		remove[bn] = true
		folded++
	}
	if folded == 0 {
		return 0, nil
	}
	kept := g.Node[:0]
	for _, n := range g.Node {
		if !remove[n] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
	RemoveUnusedInitializers(g)
	return folded, nil
}

func foldOne(conv, bn *onnxpb.NodeProto, w, bias *onnxpb.TensorProto, params [4]*onnxpb.TensorProto) (*onnxpb.TensorProto, *onnxpb.TensorProto, error) {
	wv, err := Float32s(w)
	if err != nil {
		return nil, nil, fmt.Errorf("onnxgraph: fold %s into %s: %w", Describe(bn), Describe(conv), err)
	}
	if len(w.Dims) < 3 || w.Dims[0] <= 0 {
		return nil, nil, fmt.Errorf("onnxgraph: fold %s: weight %q has dims %v, want [M, C/group, k...]", Describe(conv), w.Name, w.Dims)
	}
	m := int(w.Dims[0])
	var vals [4][]float32 // gamma, beta, mean, var
	for i, p := range params {
		if vals[i], err = Float32s(p); err != nil {
			return nil, nil, fmt.Errorf("onnxgraph: fold %s: %w", Describe(bn), err)
		}
		if len(vals[i]) != m {
			return nil, nil, fmt.Errorf("onnxgraph: fold %s: parameter %q has %d values, want %d (the conv's output channels)", Describe(bn), p.Name, len(vals[i]), m)
		}
	}
	b := make([]float32, m)
	if bias != nil {
		bv, err := Float32s(bias)
		if err != nil {
			return nil, nil, fmt.Errorf("onnxgraph: fold %s: %w", Describe(conv), err)
		}
		if len(bv) != m {
			return nil, nil, fmt.Errorf("onnxgraph: fold %s: bias %q has %d values, want %d", Describe(conv), bias.Name, len(bv), m)
		}
		copy(b, bv)
	}
	eps := float64(AttrFloatOr(bn, "epsilon", 1e-5))
	per := len(wv) / m
	for c := 0; c < m; c++ {
		k := float64(vals[0][c]) / math.Sqrt(float64(vals[3][c])+eps)
		for i := c * per; i < (c+1)*per; i++ {
			wv[i] = float32(float64(wv[i]) * k)
		}
		b[c] = float32((float64(b[c])-float64(vals[2][c]))*k + float64(vals[1][c]))
	}
	return Float32Tensor("", w.Dims, wv), Float32Tensor("", []int64{int64(m)}, b), nil
}
