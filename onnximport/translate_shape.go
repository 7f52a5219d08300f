package onnximport

import (
	"fmt"
	"slices"

	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// Translations of the ops that move data: concatenation, splits, slices,
// transposes, reshapes, flattening and padding.

// normAxis resolves a negative axis against rank r.
func (t *translator) normAxis(n *onnxpb.NodeProto, axis int64, r int) (int, error) {
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis >= int64(r) {
		return 0, t.fail(n, "axis %d is outside a rank-%d input", axis, r)
	}
	return int(axis), nil
}

func (t *translator) concat(n *onnxpb.NodeProto) error {
	ins := make([]string, len(n.Input))
	var vary []bool
	for k, name := range n.Input {
		x, err := t.tensor(n, name)
		if err != nil {
			return err
		}
		ins[k] = x
		if vary == nil {
			vary = sameVary(t.vary[x])
		} else {
			for i, v := range t.vary[x] {
				vary[i] = vary[i] || v
			}
		}
	}
	axis, err := t.normAxis(n, onnxgraph.AttrIntOr(n, "axis", 0), len(t.shape(ins[0])))
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpConcat, Inputs: ins, Outputs: []string{n.Output[0]}, Axis: axis}, vary)
	return nil
}

func (t *translator) split(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	shape := t.shape(x)
	axis, err := t.normAxis(n, onnxgraph.AttrIntOr(n, "axis", 0), len(shape))
	if err != nil {
		return err
	}
	var sizes []int64
	if t.opset < 13 {
		sizes = attrInts(n, "split", nil)
	} else if v, ok, err := t.ints(n, 1, "split"); err != nil {
		return err
	} else if ok {
		sizes = v
	}
	dim := int64(shape[axis])
	if len(sizes) == 0 {
		parts := int64(len(n.Output))
		if num := onnxgraph.AttrIntOr(n, "num_outputs", 0); num > 0 {
			parts = num
		}
		each := (dim + parts - 1) / parts
		for k := int64(0); k < parts; k++ {
			sizes = append(sizes, min(each, dim-k*each))
		}
	}
	if len(sizes) != len(n.Output) {
		return t.fail(n, "%d split sizes for %d outputs", len(sizes), len(n.Output))
	}
	total := int64(0)
	out := make([]int, len(sizes))
	for k, s := range sizes {
		if s <= 0 {
			return t.fail(n, "split size %d", s)
		}
		total += s
		out[k] = int(s)
	}
	if total != dim {
		return t.fail(n, "split sizes %v sum to %d, axis %d has %d", sizes, total, axis, dim)
	}
	if t.vary[x][axis] {
		return t.fail(n, "splits axis %d, which follows the batch or image size, into fixed sizes", axis)
	}
	t.add(n, models.GraphNode{Name: nodeName(n), Op: models.OpSplit, Inputs: []string{x}, Outputs: slices.Clone(n.Output), Axis: axis, Sizes: out})
	t.run()
	for _, o := range n.Output {
		t.vary[o] = sameVary(t.vary[x])
	}
	return nil
}

func (t *translator) slice(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	var starts, ends, axes, steps []int64
	if t.opset < 10 {
		starts, ends, axes = attrInts(n, "starts", nil), attrInts(n, "ends", nil), attrInts(n, "axes", nil)
	} else {
		var ok bool
		if starts, ok, err = t.ints(n, 1, "starts"); err != nil || !ok {
			return firstErr(err, t.fail(n, "starts missing"))
		}
		if ends, ok, err = t.ints(n, 2, "ends"); err != nil || !ok {
			return firstErr(err, t.fail(n, "ends missing"))
		}
		if axes, _, err = t.ints(n, 3, "axes"); err != nil {
			return err
		}
		if steps, _, err = t.ints(n, 4, "steps"); err != nil {
			return err
		}
	}
	if len(ends) != len(starts) {
		return t.fail(n, "%d starts and %d ends", len(starts), len(ends))
	}
	if axes == nil {
		for k := range starts {
			axes = append(axes, int64(k))
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for k := range steps {
			steps[k] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return t.fail(n, "%d starts, %d axes and %d steps", len(starts), len(axes), len(steps))
	}
	cur := x
	vary := t.vary[x]
	for k := range starts {
		shape := t.shape(cur)
		axis, err := t.normAxis(n, axes[k], len(shape))
		if err != nil {
			return err
		}
		if steps[k] < 1 {
			return t.fail(n, "step %d on axis %d: only positive steps are translated", steps[k], axis)
		}
		dim := int64(shape[axis])
		s, e := clampIndex(starts[k], dim), clampIndex(ends[k], dim)
		if s >= e {
			return t.fail(n, "slice [%d:%d] of axis %d (size %d) is empty", starts[k], ends[k], axis, dim)
		}
		g := models.GraphNode{Name: nodeName(n), Op: models.OpSlice, Inputs: []string{cur}, Axis: axis, Step: int(steps[k]), Start: int(s)}
		if starts[k] < 0 && vary[axis] {
			g.Start = int(starts[k]) // counted from the end, wherever that is
		}
		switch {
		case ends[k] >= dim:
			// To the end, whatever the size (INT64_MAX in most exports).
		case ends[k] < 0:
			v := int(ends[k])
			g.End = &v
		default:
			v := int(e)
			g.End = &v
		}
		out := n.Output[0]
		if k < len(starts)-1 {
			out = t.fresh(n.Output[0] + "/axis" + fmt.Sprint(axis))
		}
		g.Outputs = []string{out}
		t.add(n, g)
		t.finish(out, sameVary(vary))
		cur = out
	}
	return nil
}

// clampIndex resolves an ONNX slice index against a dimension.
func clampIndex(v, dim int64) int64 {
	if v < 0 {
		v += dim
	}
	return max(0, min(v, dim))
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (t *translator) transpose(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	r := len(t.shape(x))
	perm64 := attrInts(n, "perm", nil)
	perm := make([]int, r)
	for i := range perm {
		perm[i] = r - 1 - i
	}
	if perm64 != nil {
		if len(perm64) != r {
			return t.fail(n, "perm %v for a rank-%d input", perm64, r)
		}
		for i, p := range perm64 {
			perm[i] = int(p)
		}
	}
	vary := make([]bool, r)
	for i, p := range perm {
		if p < 0 || p >= r {
			return t.fail(n, "perm %v", perm64)
		}
		vary[i] = t.vary[x][p]
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpTranspose, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Perm: perm}, vary)
	return nil
}

func (t *translator) reshape(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	target, ok, err := t.ints(n, 1, "shape")
	if err != nil {
		return err
	}
	if !ok {
		return t.fail(n, "the target shape (input 1) is missing")
	}
	in := t.shape(x)
	allowZero := onnxgraph.AttrIntOr(n, "allowzero", 0) != 0
	out := make([]int, len(target))
	infer, known := -1, 1
	for i, d := range target {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return t.fail(n, "target %v copies dimension %d of a rank-%d input", target, i, len(in))
			}
			out[i] = in[i]
		case d == 0:
			return t.fail(n, "allowzero with a zero dimension makes an empty tensor")
		case d == -1:
			if infer >= 0 {
				return t.fail(n, "target %v has two -1", target)
			}
			infer = i
			continue
		case d < 0:
			return t.fail(n, "target %v has dimension %d", target, d)
		default:
			out[i] = int(d)
		}
		known *= out[i]
	}
	total := 1
	for _, d := range in {
		total *= d
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return t.fail(n, "cannot infer -1 of %v from input %v", target, in)
		}
		out[infer] = total / known
	}
	dims, vary, err := followInput(in, out, t.vary[x])
	if err != nil {
		return t.fail(n, "reshape of %v into %v cannot follow the input's size: %v", in, out, err)
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpReshape, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Shape: dims}, vary)
	if got := t.shape(n.Output[0]); !slices.Equal(got, out) {
		return t.fail(n, "the rewritten target %v gives %v, the graph %v", dims, got, out)
	}
	return nil
}

func (t *translator) flatten(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	r := len(t.shape(x))
	axis := onnxgraph.AttrIntOr(n, "axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis > int64(r) {
		return t.fail(n, "axis %d for a rank-%d input", axis, r)
	}
	v := t.vary[x]
	vary := []bool{slices.Contains(v[:axis], true), slices.Contains(v[axis:], true)}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpFlatten, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Axis: int(axis)}, vary)
	return nil
}

func (t *translator) pad(n *onnxpb.NodeProto) error {
	x, _, err := t.nchw(n)
	if err != nil {
		return err
	}
	if mode := onnxgraph.AttrStringOr(n, "mode", "constant"); mode != "constant" {
		return t.fail(n, "mode %q: only zero padding is translated", mode)
	}
	pads, ok, err := t.ints(n, 1, "pads")
	if err != nil {
		return err
	}
	if !ok {
		return t.fail(n, "pads (input 1) missing")
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		v, _, err := t.floats(n, 2, "constant_value")
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0] != 0 {
			return t.fail(n, "constant_value %v: only zero padding is translated", v)
		}
	}
	axes := []int64{0, 1, 2, 3}
	if a, found, err := t.ints(n, 3, "axes"); err != nil {
		return err
	} else if found {
		axes = a
	}
	if len(pads) != 2*len(axes) {
		return t.fail(n, "%d pads for %d axes", len(pads), len(axes))
	}
	var p [4]int64 // top, left, bottom, right
	for k, a := range axes {
		if a < 0 {
			a += 4
		}
		begin, end := pads[k], pads[k+len(axes)]
		switch a {
		case 2:
			p[0], p[2] = begin, end
		case 3:
			p[1], p[3] = begin, end
		default:
			if begin != 0 || end != 0 {
				return t.fail(n, "pads %v pad axis %d: only height and width are translated", pads, a)
			}
		}
	}
	if min(p[0], p[1], p[2], p[3]) < 0 {
		return t.fail(n, "negative pads %v (cropping)", pads)
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpPad, Inputs: []string{x}, Outputs: []string{n.Output[0]},
		Pad: []int{int(p[0]), int(p[1]), int(p[2]), int(p[3])}}, sameVary(t.vary[x]))
	return nil
}
