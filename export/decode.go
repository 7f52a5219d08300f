package export

import (
	"fmt"
	"strconv"

	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
)

// Decoded output names (see the package documentation).
const (
	InputName      = "images"
	BoxesName      = "boxes"
	ScoresName     = "scores"
	CenternessName = "centerness"
)

// RawNames returns the per-level raw output names of a config in graph
// order: cls_logits_<i>, box_reg_<i> and (FCOS) centerness_<i> for each level.
func RawNames(cfg models.Config) []string {
	var names []string
	for i := range cfg.FPN.Levels {
		l := strconv.Itoa(i)
		names = append(names, "cls_logits_"+l, "box_reg_"+l)
		if cfg.Family == models.FamilyFCOS {
			names = append(names, "centerness_"+l)
		}
	}
	return names
}

// FeatureNames returns feature_<i> for each pyramid level.
func FeatureNames(cfg models.Config) []string {
	names := make([]string, len(cfg.FPN.Levels))
	for i := range names {
		names[i] = "feature_" + strconv.Itoa(i)
	}
	return names
}

// flatten emits the graph form of models.Flatten: per-level maps
// [N, A·C, H, W] become rows [N, Σ H·W·A, C] in (level, y, x, anchor) order.
func (w *walker) flatten(base string, maps []string, p *models.Priors, channels int) string {
	a := int64(p.NumAnchors)
	c := int64(channels)
	parts := make([]string, len(maps))
	for i, m := range maps {
		lv := p.Levels[i]
		hw := int64(lv.H * lv.W)
		b := base + "." + strconv.Itoa(i)
		t := w.g.reshape(b+".split", m, 0, a, c, hw)
		t = w.g.emit("Transpose", b+".transpose", []string{t}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
		parts[i] = w.g.reshape(b+".rows", t, 0, hw*a, c)
	}
	return w.g.emit("Concat", base, parts, onnxgraph.AttrInt("axis", 1))
}

// decode emits the decoded outputs from the head's per-level maps: sigmoid
// scores, boxes in input pixels and, for FCOS, centerness probabilities. The
// arithmetic follows models.DecodeDeltas (RetinaNet) and models.DecodeDistances (FCOS)
// op for op, with priors baked in as constants for the export's input size.
func (w *walker) decode(d *models.Detector, h headOutputs, inputH, inputW int) ([]string, error) {
	cfg := d.Config
	p := d.Priors(inputH, inputW)
	if len(p.Levels) != len(h.cls) {
		return nil, fmt.Errorf("export: priors have %d levels, the head %d", len(p.Levels), len(h.cls))
	}
	g := w.g
	cls := w.flatten("decode.cls", h.cls, p, cfg.NumClasses)
	scores := g.op("Sigmoid", g.reserve(ScoresName), []string{cls})
	reg := w.flatten("decode.reg", h.reg, p, 4)
	r := int64(p.Len())
	clamp := g.floatConst(nil, models.ScaleClamp)
	var boxes string
	switch cfg.Family {
	case models.FamilyRetinaNet:
		wt := cfg.Loss.BoxCoderWeights
		size := make([]float32, 0, 2*r)
		centre := make([]float32, 0, 2*r)
		for i := int64(0); i < r; i++ {
			a := p.Anchors[4*i : 4*i+4]
			aw, ah := a[2]-a[0], a[3]-a[1]
			size = append(size, aw, ah)
			centre = append(centre, a[0]+0.5*aw, a[1]+0.5*ah)
		}
		sizeT := g.table("decode.anchor_size", []int64{1, r, 2}, size)
		centreT := g.table("decode.anchor_centre", []int64{1, r, 2}, centre)
		shift := g.slice("decode.dxy", reg, 2, 0, 2)
		shift = g.emit("Div", "decode.dxy.weighted", []string{shift, g.floatConst([]int64{2}, wt[0], wt[1])})
		scale := g.slice("decode.dwh", reg, 2, 2, 4)
		scale = g.emit("Div", "decode.dwh.weighted", []string{scale, g.floatConst([]int64{2}, wt[2], wt[3])})
		scale = g.emit("Min", "decode.dwh.clamped", []string{scale, clamp})
		ctr := g.emit("Mul", "decode.centre.offset", []string{shift, sizeT})
		ctr = g.emit("Add", "decode.centre", []string{ctr, centreT})
		wh := g.emit("Exp", "decode.wh.exp", []string{scale})
		wh = g.emit("Mul", "decode.wh", []string{wh, sizeT})
		half := g.emit("Mul", "decode.half", []string{wh, g.floatConst(nil, 0.5)})
		lo := g.emit("Sub", "decode.x1y1", []string{ctr, half})
		hi := g.emit("Add", "decode.x2y2", []string{ctr, half})
		boxes = g.op("Concat", g.reserve(BoxesName), []string{lo, hi}, onnxgraph.AttrInt("axis", 2))
	case models.FamilyFCOS:
		stridesT := g.table("decode.strides", []int64{1, r, 1}, p.Strides)
		pointsT := g.table("decode.points", []int64{1, r, 2}, p.Points)
		dist := g.emit("Min", "decode.ltrb.clamped", []string{reg, clamp})
		dist = g.emit("Exp", "decode.ltrb.exp", []string{dist})
		dist = g.emit("Mul", "decode.ltrb", []string{dist, stridesT})
		lt := g.slice("decode.lt", dist, 2, 0, 2)
		rb := g.slice("decode.rb", dist, 2, 2, 4)
		lo := g.emit("Sub", "decode.x1y1", []string{pointsT, lt})
		hi := g.emit("Add", "decode.x2y2", []string{pointsT, rb})
		boxes = g.op("Concat", g.reserve(BoxesName), []string{lo, hi}, onnxgraph.AttrInt("axis", 2))
	default:
		return nil, fmt.Errorf("export: head family %q cannot be decoded (want %q or %q)", cfg.Family, models.FamilyRetinaNet, models.FamilyFCOS)
	}
	names := []string{boxes, scores}
	if cfg.Family == models.FamilyFCOS {
		ctr := w.flatten("decode.centerness", h.ctr, p, 1)
		names = append(names, g.op("Sigmoid", g.reserve(CenternessName), []string{ctr}))
	}
	return names, nil
}
