package export

import (
	"fmt"
	"strconv"

	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// MinTwoStageOpset is the oldest opset a two-stage export is written in:
// RoiAlign's half_pixel coordinates (torchvision's aligned ROIAlign, which
// the engine computes) arrived in opset 16.
const MinTwoStageOpset = 16

// ProposalsDim names the dynamic region dimension of a two-stage export's
// outputs.
const ProposalsDim = "proposals"

// rpn emits the two-stage family's RPN on every pyramid level: its shared
// tower (that level's batch norms folded in) and the 1×1 objectness and
// delta convolutions, written to cls_logits_<i> and box_reg_<i>.
func (w *walker) rpn(prefix string, h *models.RPNHead, feats []string, out *headOutputs) error {
	for l, f := range feats {
		lv := strconv.Itoa(l)
		x, err := w.tower(prefix+".l"+lv+".tower", h.Tower, l, f)
		if err != nil {
			return err
		}
		out.cls = append(out.cls, w.outConv(h.Objectness, x, "cls_logits_"+lv))
		out.reg = append(out.reg, w.outConv(h.Deltas, x, "box_reg_"+lv))
	}
	return nil
}

// twoStage emits the second half of a two-stage export for one image (the
// batch is fixed at 1): the proposals as models.GenerateProposals makes
// them with the inference settings (per level TopK, decoding, clipping,
// the size filter, NonMaxSuppression; then TopK over the levels), RoiAlign
// of each proposal on the level FPN's rule gives it, the box head, and the
// decoded outputs: "scores"
// [1, P, K] (softmax, background dropped) and "boxes" [1, P, K, 4]
// (class-specific, input pixels, not clipped), P the dynamic number of
// proposals.
func (w *walker) twoStage(d *models.Detector, h headOutputs, size int) ([]string, error) {
	cfg := d.Config
	if w.g.opset < MinTwoStageOpset {
		return nil, fmt.Errorf("export: the two-stage detector %q needs opset ≥ %d (RoiAlign with half-pixel coordinates), not %d", cfg.Name, MinTwoStageOpset, w.g.opset)
	}
	g := w.g
	p := d.Priors(size, size)
	rpn, rh := cfg.RPN, cfg.ROIHead
	a := int64(p.NumAnchors)
	clamp := g.floatConst(nil, models.ScaleClamp)
	var levelBoxes, levelScores []string
	for l, lv := range p.Levels {
		base := "rpn.proposals." + strconv.Itoa(l)
		hw := int64(lv.H * lv.W)
		r := hw * a
		rows := func(name, m string, c int64) string {
			t := g.reshape(name+".split", m, 1, a, c, hw)
			t = g.emit("Transpose", name+".transpose", []string{t}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
			return g.reshape(name+".rows", t, r, c)
		}
		logits := g.reshape(base+".logits", rows(base+".cls", h.cls[l], 1), r)
		deltas := rows(base+".deltas", h.reg[l], 4)
		k := min(int64(rpn.PreNMSTopKTest), r)
		top := g.fresh(base + ".top")
		topIdx := g.fresh(base + ".top_index")
		g.nodes = append(g.nodes, onnxgraph.NewNode("TopK", top, []string{logits, g.intConst(k)}, []string{top, topIdx},
			onnxgraph.AttrInt("axis", 0), onnxgraph.AttrInt("largest", 1), onnxgraph.AttrInt("sorted", 1)))
		gather := func(name, data string) string {
			return g.emit("Gather", name, []string{data, topIdx}, onnxgraph.AttrInt("axis", 0))
		}
		anchorSize, centre := anchorTables(p.Anchors[4*lv.Start : 4*(lv.Start+lv.Count)])
		sizeT := gather(base+".anchor_size", g.table(base+".anchor_size_table", []int64{r, 2}, anchorSize))
		centreT := gather(base+".anchor_centre", g.table(base+".anchor_centre_table", []int64{r, 2}, centre))
		boxes := w.decodeDeltas(base, gather(base+".top_deltas", deltas), sizeT, centreT, cfg.Loss.BoxCoderWeights, 1, clamp)
		boxes = g.clip(base+".clipped", boxes, 0, float32(size))
		// Boxes not wider and taller than min_size get a score no NMS
		// keeps (its score threshold lies above it).
		wh := g.emit("Sub", base+".wh", []string{g.slice(base+".x2y2", boxes, 1, 2, 4), g.slice(base+".x1y1", boxes, 1, 0, 2)})
		big := g.emit("Greater", base+".big", []string{wh, g.floatConst(nil, rpn.MinSize)})
		valid := g.emit("And", base+".valid", []string{g.slice(base+".wide", big, 1, 0, 1), g.slice(base+".tall", big, 1, 1, 2)})
		valid = g.reshape(base+".valid_rows", valid, k)
		scores := g.emit("Where", base+".scores", []string{valid, top, g.floatConst(nil, -3e38)})
		kept := g.emit("NonMaxSuppression", base+".nms", []string{
			g.reshape(base+".nms_boxes", boxes, 1, k, 4), g.reshape(base+".nms_scores", scores, 1, 1, k),
			g.intConst(k), g.floatConst(nil, rpn.NMSIoU), g.floatConst(nil, -1e38)})
		keptIdx := g.reshape(base+".kept", g.slice(base+".kept_col", kept, 1, 2, 3), -1)
		levelBoxes = append(levelBoxes, g.emit("Gather", base+".kept_boxes", []string{boxes, keptIdx}, onnxgraph.AttrInt("axis", 0)))
		levelScores = append(levelScores, g.emit("Gather", base+".kept_scores", []string{top, keptIdx}, onnxgraph.AttrInt("axis", 0)))
	}
	allBoxes := g.emit("Concat", "rpn.proposals.boxes", levelBoxes, onnxgraph.AttrInt("axis", 0))
	allScores := g.emit("Concat", "rpn.proposals.scores", levelScores, onnxgraph.AttrInt("axis", 0))
	count := g.emit("Shape", "rpn.proposals.count", []string{allScores})
	post := g.emit("Min", "rpn.proposals.post_k", []string{count, g.intConst(int64(rpn.PostNMSTopKTest))})
	best := g.fresh("rpn.proposals.best")
	bestIdx := g.fresh("rpn.proposals.best_index")
	g.nodes = append(g.nodes, onnxgraph.NewNode("TopK", best, []string{allScores, post}, []string{best, bestIdx},
		onnxgraph.AttrInt("axis", 0), onnxgraph.AttrInt("largest", 1), onnxgraph.AttrInt("sorted", 1)))
	props := g.emit("Gather", "rpn.proposals", []string{allBoxes, bestIdx}, onnxgraph.AttrInt("axis", 0))

	// Pooling: the level index of each proposal from its area, as
	// models.ROILevels compares it.
	x1y1 := g.slice("roi.x1y1", props, 1, 0, 2)
	pwh := g.emit("Sub", "roi.wh", []string{g.slice("roi.x2y2", props, 1, 2, 4), x1y1})
	area := g.reshape("roi.area_rows", g.emit("Mul", "roi.area", []string{g.slice("roi.w", pwh, 1, 0, 1), g.slice("roi.h", pwh, 1, 1, 2)}), -1)
	var level string
	for i, t := range models.LevelThresholds(cfg.FPN.Levels, rh.CanonicalLevel, rh.CanonicalSize) {
		step := g.emit("Cast", "roi.level_step."+strconv.Itoa(i), []string{g.emit("GreaterOrEqual", "roi.above."+strconv.Itoa(i), []string{area, g.floatConst(nil, t)})},
			onnxgraph.AttrInt("to", int64(onnxgraph.Float32)))
		if level == "" {
			level = step
		} else {
			level = g.emit("Add", "roi.level", []string{level, step})
		}
	}
	// Each level pools only its own proposals (NonZero, Gather); the
	// level-major rows go back to proposal order through the inverse
	// permutation, which an ascending TopK of the gathered indices gives.
	var parts, perm []string
	for l := range p.Levels {
		base := "roi.pool." + strconv.Itoa(l)
		mask := g.emit("Equal", base+".is_level", []string{level, g.floatConst(nil, float32(l))})
		idx := g.reshape(base+".index", g.emit("NonZero", base+".nonzero", []string{mask}), -1)
		rois := g.emit("Gather", base+".rois", []string{props, idx}, onnxgraph.AttrInt("axis", 0))
		batch := g.emit("ConstantOfShape", base+".batch_index", []string{g.emit("Shape", base+".count", []string{idx})},
			onnxgraph.AttrTensor("value", onnxgraph.Int64Tensor("", []int64{1}, []int64{0})))
		parts = append(parts, g.emit("RoiAlign", base, []string{h.features[l], rois, batch},
			onnxgraph.AttrString("mode", "avg"),
			onnxgraph.AttrInt("output_height", int64(rh.PoolSize)), onnxgraph.AttrInt("output_width", int64(rh.PoolSize)),
			onnxgraph.AttrInt("sampling_ratio", int64(rh.SamplingRatio)),
			onnxgraph.AttrFloat("spatial_scale", 1/float32(p.Levels[l].Stride)),
			onnxgraph.AttrString("coordinate_transformation_mode", "half_pixel")))
		perm = append(perm, idx)
	}
	order := g.emit("Cast", "roi.order", []string{g.emit("Concat", "roi.perm", perm, onnxgraph.AttrInt("axis", 0))},
		onnxgraph.AttrInt("to", int64(onnxgraph.Float32)))
	sorted := g.fresh("roi.sorted")
	inverse := g.fresh("roi.inverse")
	g.nodes = append(g.nodes, onnxgraph.NewNode("TopK", sorted, []string{order, post}, []string{sorted, inverse},
		onnxgraph.AttrInt("axis", 0), onnxgraph.AttrInt("largest", 0), onnxgraph.AttrInt("sorted", 1)))
	pooled := g.emit("Gather", "roi.pooled", []string{g.emit("Concat", "roi.pooled_by_level", parts, onnxgraph.AttrInt("axis", 0)), inverse},
		onnxgraph.AttrInt("axis", 0))

	// Box head: the two fully connected layers are convolutions.
	k := int64(cfg.NumClasses)
	bh := d.BoxHead
	fc := w.plainConv("roi_head.fc1", bh.FC1, pooled)
	fc = g.emit("Relu", "roi_head.fc1.relu", []string{fc})
	fc = w.plainConv("roi_head.fc2", bh.FC2, fc)
	fc = g.emit("Relu", "roi_head.fc2.relu", []string{fc})
	cls := g.reshape("roi_head.cls.rows", w.plainConv("roi_head.cls", bh.Cls, fc), -1, k+1)
	reg := g.reshape("roi_head.reg.rows", w.plainConv("roi_head.reg", bh.Reg, fc), -1, k, 4)
	prob := g.emit("Softmax", "roi_head.prob", []string{cls}, onnxgraph.AttrInt("axis", 1))
	scores := g.op("Reshape", g.reserve(ScoresName), []string{g.slice("roi_head.fg_prob", prob, 1, 0, k), g.intConst(1, -1, k)})

	// Class-specific boxes from each proposal ([P, 1, 2] against [P, K, 2]).
	centre := g.emit("Add", "roi.centre", []string{x1y1, g.emit("Mul", "roi.half_wh", []string{pwh, g.floatConst(nil, 0.5)})})
	boxes := w.decodeDeltas("roi_head.decode", reg, g.reshape("roi.wh_3d", pwh, -1, 1, 2), g.reshape("roi.centre_3d", centre, -1, 1, 2), rh.BoxCoderWeights, 2, clamp)
	boxes = g.op("Reshape", g.reserve(BoxesName), []string{boxes, g.intConst(1, -1, k, 4)})
	return []string{boxes, scores}, nil
}

// anchorTables returns the (width, height) and (centre x, centre y) of each
// anchor (R·4 → R·2 each), computed as models.DecodeDeltas takes them.
func anchorTables(anchors []float32) (size, centre []float32) {
	for i := 0; i+4 <= len(anchors); i += 4 {
		a := anchors[i : i+4]
		w, h := a[2]-a[0], a[3]-a[1]
		size = append(size, w, h)
		centre = append(centre, a[0]+0.5*w, a[1]+0.5*h)
	}
	return size, centre
}

// decodeDeltas emits models.DecodeDeltas op for op: deltas [..., 4] along
// axis with reference sizes and centres broadcasting against their
// (dx, dy) and (dw, dh) halves; the result concatenates x1y1 and x2y2.
func (w *walker) decodeDeltas(base, deltas, size, centre string, wt [4]float32, axis int64, clamp string) string {
	g := w.g
	shift := g.emit("Div", base+".dxy", []string{g.slice(base+".dxy_raw", deltas, axis, 0, 2), g.floatConst([]int64{2}, wt[0], wt[1])})
	scale := g.emit("Div", base+".dwh", []string{g.slice(base+".dwh_raw", deltas, axis, 2, 4), g.floatConst([]int64{2}, wt[2], wt[3])})
	scale = g.emit("Min", base+".dwh.clamped", []string{scale, clamp})
	ctr := g.emit("Add", base+".centre", []string{g.emit("Mul", base+".offset", []string{shift, size}), centre})
	wh := g.emit("Mul", base+".wh", []string{g.emit("Exp", base+".wh.exp", []string{scale}), size})
	half := g.emit("Mul", base+".half", []string{wh, g.floatConst(nil, 0.5)})
	lo := g.emit("Sub", base+".x1y1", []string{ctr, half})
	hi := g.emit("Add", base+".x2y2", []string{ctr, half})
	return g.emit("Concat", base+".boxes", []string{lo, hi}, onnxgraph.AttrInt("axis", axis))
}

// plainConv emits a convolution with its trained weights and bias (no
// batch norm).
func (w *walker) plainConv(base string, c *nn.Conv2d, x string) string {
	var bias []float32
	if c.Bias != nil {
		bias = c.Bias.ToHost()
	}
	return w.g.conv(base, x, c.Weight.ToHost(), c.Weight.Shape(), bias, c.Options)
}

// twoStageValueInfo declares a float output [1, P, dims...] whose second
// dimension is the dynamic number of proposals.
func twoStageValueInfo(name string, dims ...int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
		{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1}},
		{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: ProposalsDim}},
	}}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: onnxgraph.Float32, Shape: shape}}}}
}
