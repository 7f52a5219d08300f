package distill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/geom"
	"github.com/gidedge/gidedge/models"
)

// Loss part names a Distiller reports (weighted values, as added to the
// loss).
const (
	PartFeature     = "gid_feat"
	PartRelation    = "gid_rel"
	PartResponseCls = "gid_cls"
	PartResponseReg = "gid_reg"
	PartFitNet      = "kd_fitnet"
	PartFineGrained = "kd_fg"
	PartKDCls       = "kd_cls"
	PartKDReg       = "kd_reg"
	// Response KD of a two-stage pair also distils the box heads.
	PartKDROICls = "kd_roi_cls"
	PartKDROIReg = "kd_roi_reg"
)

// Adapter holds the trainable 3×3 convolutions (one per pyramid level,
// with bias) that map the student's FPN features to the teacher's channel
// count before they are compared. It is trained with the student and saved
// with it under "extra.adapt.<level>".
type Adapter struct {
	Convs []*nn.Conv2d
}

var _ nn.Module = (*Adapter)(nil)

// NewAdapter builds one student→teacher adaptation convolution per level.
func NewAdapter(rng *rand.Rand, levels, studentChannels, teacherChannels int) *Adapter {
	a := &Adapter{}
	for range levels {
		a.Convs = append(a.Convs, nn.NewConv2d(rng, nn.ConvConfig{In: studentChannels, Out: teacherChannels, Kernel: 3, Pad: 1, Bias: true}))
	}
	return a
}

// Visit implements nn.Module.
func (a *Adapter) Visit(prefix string, v nn.Visitor) {
	for i, c := range a.Convs {
		c.Visit(nn.Join(prefix, "adapt."+strconv.Itoa(i)), v)
	}
}

// Distiller computes the distillation loss of a student against a teacher
// for one training batch.
type Distiller struct {
	opts    Options
	teacher Teacher
	student *models.Detector
	adapter *Adapter
	// inputGain and inputBias convert the student's normalised input to the
	// teacher's normalisation ([1, 3, 1, 1]); nil when they agree.
	inputGain, inputBias *engine.Tensor
	// levelS0 is s0 of the GI level rule (Options.LevelS0 or AutoS0).
	levelS0 float32
	// roiTeacher runs the teacher's box head (two-stage pairs whose method
	// distils responses).
	roiTeacher ROIHeadTeacher

	mu    sync.Mutex
	stats Stats
}

// Stats count the GIs a Distiller has selected.
type Stats struct {
	Images int
	GIs    int
	ByType [3]int // indexed by GIType
	// FromTeacher counts GIs whose box was the teacher's prediction.
	FromTeacher int
}

// New prepares distillation of student from teacher. seed initialises the
// adaptation convolutions.
func New(teacher Teacher, student *models.Detector, opts Options, seed uint64) (*Distiller, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	tc, sc := teacher.Config(), student.Config
	if err := CheckLayout(tc, sc); err != nil {
		return nil, err
	}
	d := &Distiller{opts: opts, teacher: teacher, student: student, levelS0: opts.LevelS0}
	if sc.TwoStage() && opts.usesBoxHeads() {
		rt, ok := teacher.(ROIHeadTeacher)
		if !ok || !tc.TwoStage() {
			return nil, fmt.Errorf("%w: %s distils the box heads of a two-stage pair, which needs the teacher's box head on the student's regions: teacher %s cannot run it (use a gidedge checkpoint of a two-stage teacher, or a method without response distillation)",
				ErrLayout, opts.Method, teacher.Describe())
		}
		d.roiTeacher = rt
	}
	if d.levelS0 == 0 {
		d.levelS0 = AutoS0(sc)
	}
	if opts.usesFeatures() {
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed_ad4a_7e25))
		d.adapter = NewAdapter(rng, len(sc.FPN.Levels), sc.FPN.Channels, tc.FPN.Channels)
	}
	if tc.Input.Mean != sc.Input.Mean || tc.Input.Std != sc.Input.Std {
		// x_t = (x_s·std_s + mean_s − mean_t) / std_t, per channel.
		gain, bias := make([]float32, 3), make([]float32, 3)
		for c := 0; c < 3; c++ {
			gain[c] = sc.Input.Std[c] / tc.Input.Std[c]
			bias[c] = (sc.Input.Mean[c] - tc.Input.Mean[c]) / tc.Input.Std[c]
		}
		d.inputGain, d.inputBias = engine.FromHost(gain, 1, 3, 1, 1), engine.FromHost(bias, 1, 3, 1, 1)
	}
	return d, nil
}

// Module returns the trainable modules the distillation adds (the
// adaptation convolutions), or nil when the method has none.
func (d *Distiller) Module() nn.Module {
	if d.adapter == nil {
		return nil
	}
	return d.adapter
}

// Options returns the settings the Distiller runs with.
func (d *Distiller) Options() Options { return d.opts }

// Stats returns the GI counts so far.
func (d *Distiller) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Step is the distillation part of one training step.
type Step struct {
	// Loss is the weighted sum to add to the detection loss (nil when there
	// is nothing to add).
	Loss *engine.Tensor
	// Parts are the weighted loss terms by name (Part… constants).
	Parts map[string]float32
	// GIs are the general instances of each image (GID only).
	GIs [][]GI
}

// Step computes the distillation loss for a batch: x [N, 3, H, W] is the
// student's input, out the student's outputs for it (in the graph) and
// targets the ground truth (input pixels). Errors name the layout mismatch
// or the teacher failure.
func (d *Distiller) Step(ctx context.Context, x *engine.Tensor, out *models.Outputs, targets [][]dataset.Target) (*Step, error) {
	tx := x
	if d.inputGain != nil {
		engine.NoGrad(func() { tx = engine.Add(engine.Mul(x, d.inputGain), d.inputBias) })
	}
	tout, err := d.teacher.Forward(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := checkOutputs(tout, out, d.student.Config.Strides()); err != nil {
		return nil, fmt.Errorf("%w (teacher %s)", err, d.teacher.Describe())
	}
	if d.adapter != nil {
		want := d.teacher.Config().FPN.Channels
		for l, f := range tout.Features {
			if f.Dim(1) != want {
				return nil, fmt.Errorf("%w: level %d teacher feature has %d channels, its config says fpn.channels %d", ErrLayout, l, f.Dim(1), want)
			}
		}
	}
	if len(targets) != x.Dim(0) {
		return nil, fmt.Errorf("distill: %d target lists for a batch of %d", len(targets), x.Dim(0))
	}
	st := &Step{Parts: map[string]float32{}}
	switch d.opts.Method {
	case MethodGID:
		if err := d.gid(st, out, tout, targets); err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
	case MethodFitNet:
		d.fitNet(st, out, tout)
	case MethodFineGrained:
		d.fineGrained(st, out, tout, targets)
	case MethodResponseKD:
		if err := d.responseAll(st, out, tout); err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
	}
	return st, nil
}

// add accumulates a weighted term into the step's loss and parts.
func (st *Step) add(name string, weight float32, term *engine.Tensor) {
	v := engine.MulScalar(term, weight)
	st.Parts[name] += v.Item()
	if st.Loss == nil {
		st.Loss = v
	} else {
		st.Loss = engine.Add(st.Loss, v)
	}
}

// flat holds one model's outputs flattened to rows (level, y, x, anchor).
type flat struct {
	cls, reg, ctr *engine.Tensor // [N, R, K], [N, R, 4], [N, R, 1] (ctr FCOS only)
}

func flatten(o *models.Outputs) flat {
	cls, reg := models.Flatten(o)
	return flat{cls: cls, reg: reg, ctr: models.FlattenCenterness(o)}
}

// targetBoxes returns the non-crowd boxes of one image (G·4).
func targetBoxes(ts []dataset.Target) []float32 {
	out := make([]float32, 0, 4*len(ts))
	for _, t := range ts {
		if t.Crowd {
			continue
		}
		out = append(out, float32(t.Box.X1), float32(t.Box.Y1), float32(t.Box.X2), float32(t.Box.Y2))
	}
	return out
}

// decoder returns a function that decodes the regression values of given
// positions into boxes, as the student's head family does.
func (d *Distiller) decoder(p *models.Priors) func(reg []float32, rows []int) []float32 {
	cfg := d.student.Config
	return func(reg []float32, rows []int) []float32 {
		if cfg.Family == models.FamilyFCOS {
			pts := make([]float32, 2*len(rows))
			st := make([]float32, len(rows))
			for i, r := range rows {
				pts[2*i], pts[2*i+1] = p.Points[2*r], p.Points[2*r+1]
				st[i] = p.Strides[r]
			}
			return models.DecodeDistances(pts, st, reg)
		}
		anchors := make([]float32, 4*len(rows))
		for i, r := range rows {
			copy(anchors[4*i:4*i+4], p.Anchors[4*r:4*r+4])
		}
		return models.DecodeDeltas(anchors, reg, cfg.Loss.BoxCoderWeights)
	}
}

// gid runs GISM and GID's three losses.
func (d *Distiller) gid(st *Step, out, tout *models.Outputs, targets [][]dataset.Target) error {
	o := d.opts
	n, h, w := out.ClsLogits[0].Dim(0), out.InputH, out.InputW
	p := d.student.Priors(h, w)
	r, k := p.Len(), d.student.Config.HeadClasses()

	var s, t flat
	if o.Response {
		s = flatten(out)
	} else {
		engine.NoGrad(func() { s = flatten(out) })
	}
	engine.NoGrad(func() { t = flatten(tout) })
	if s.cls.Dim(1) != r {
		return fmt.Errorf("student outputs have %d positions, priors of %dx%d have %d", s.cls.Dim(1), h, w, r)
	}
	// GISM runs on the host: four reads per step (both models' class
	// probabilities and box regressions).
	var tProbT *engine.Tensor
	var tProb, sProb, tReg, sReg []float32
	engine.NoGrad(func() {
		tProbT = engine.Sigmoid(t.cls)
		tProb, sProb = tProbT.ToHost(), engine.Sigmoid(s.cls).ToHost()
	})
	tReg, sReg = t.reg.ToHost(), s.reg.ToHost()
	decode := d.decoder(p)

	st.GIs = make([][]GI, n)
	var keep *GIType
	switch o.GIMode {
	case GIModePositive:
		v := GIPositive
		keep = &v
	case GIModeSemi:
		v := GISemi
		keep = &v
	case GIModeNegative:
		v := GINegative
		keep = &v
	}
	for i := 0; i < n; i++ {
		gts := targetBoxes(targets[i])
		if o.GIMode == GIModeGTOnly {
			st.GIs[i] = GroundTruthGIs(gts, o.TopK)
			continue
		}
		gis, err := Select(SelectInput{
			TeacherProb: tProb[i*r*k : (i+1)*r*k], StudentProb: sProb[i*r*k : (i+1)*r*k], NumClasses: k,
			TeacherReg: tReg[i*r*4 : (i+1)*r*4], StudentReg: sReg[i*r*4 : (i+1)*r*4], Decode: decode,
			Width: float32(w), Height: float32(h), GTBoxes: gts, Positive: d.student.PositiveMask(p, gts),
		}, SelectOptions{PreTopK: o.PreTopK, MinSize: o.MinSize, NMSIoU: o.NMSIoU, TopK: o.TopK, Keep: keep})
		if err != nil {
			return err
		}
		st.GIs[i] = gis
	}
	d.count(st.GIs)

	if o.Feature || o.Relation {
		sF, tF, groups := d.roiFeatures(st.GIs, out, tout)
		if sF != nil {
			if o.Feature {
				st.add(PartFeature, o.FeatureWeight, FeatureLoss(sF, tF))
			}
			if o.Relation {
				g := sF.Dim(0)
				if o.RelationScope == RelationPerBatch {
					groups = [][2]int{{0, g}}
				}
				st.add(PartRelation, o.RelationWeight, RelationLoss(engine.Reshape(sF, g, -1), engine.Reshape(tF, g, -1), groups))
			}
		} else {
			if o.Feature {
				st.Parts[PartFeature] = 0
			}
			if o.Relation {
				st.Parts[PartRelation] = 0
			}
		}
	}
	if o.Response && d.roiTeacher != nil {
		return d.boxHeadResponse(st, out, tout, st.GIs, PartResponseCls, PartResponseReg)
	}
	if o.Response {
		var rows []int
		for i, gis := range st.GIs {
			boxes := make([]float32, 0, 4*len(gis))
			for _, g := range gis {
				boxes = append(boxes, g.Box[:]...)
			}
			for pos, m := range d.student.PositiveMask(p, boxes) {
				if m {
					rows = append(rows, i*r+pos)
				}
			}
		}
		cls, reg := d.response(s, t, tProbT, rows, n*r, float32(len(rows)))
		st.add(PartResponseCls, o.ResponseWeight*o.ClsWeight, cls)
		st.add(PartResponseReg, o.ResponseWeight*o.RegWeight, reg)
	}
	return nil
}

// response computes the response losses over the given rows (of the
// batch's N·R positions), normalised by norm: BCE of the student's class
// logits (and, for FCOS, centerness logits) against the teacher's
// probabilities tProb [N, R, K], and L1 between the raw box regressions.
// The teacher's targets are gathered on the device.
func (d *Distiller) response(s, t flat, tProb *engine.Tensor, rows []int, total int, norm float32) (cls, reg *engine.Tensor) {
	if len(rows) == 0 {
		return engine.Scalar(0), engine.Scalar(0)
	}
	k := d.student.Config.HeadClasses()
	var tCls, tReg, tCtr *engine.Tensor
	engine.NoGrad(func() {
		tCls = engine.IndexSelect(engine.Reshape(tProb, total, k), 0, rows)
		tReg = engine.IndexSelect(engine.Reshape(t.reg, total, 4), 0, rows)
		if s.ctr != nil && t.ctr != nil {
			tCtr = engine.IndexSelect(engine.Reshape(engine.Sigmoid(t.ctr), total, 1), 0, rows)
		}
	})
	sCls := engine.IndexSelect(engine.Reshape(s.cls, total, k), 0, rows)
	sReg := engine.IndexSelect(engine.Reshape(s.reg, total, 4), 0, rows)
	cls = engine.Sum(engine.BCEWithLogits(sCls, tCls))
	reg = engine.Sum(engine.L1Loss(sReg, tReg))
	if tCtr != nil {
		sCtr := engine.IndexSelect(engine.Reshape(s.ctr, total, 1), 0, rows)
		cls = engine.Add(cls, engine.Sum(engine.BCEWithLogits(sCtr, tCtr)))
	}
	inv := 1 / max(norm, 1)
	return engine.MulScalar(cls, inv), engine.MulScalar(reg, inv)
}

// roiFeatures pools the GIs' features: the teacher's FPN level and the
// adapted student's, each [G, C_t, S, S] in GI order (image-major), and
// the row range of each image. It returns nils when there are no GIs.
func (d *Distiller) roiFeatures(gis [][]GI, out, tout *models.Outputs) (student, teacher *engine.Tensor, groups [][2]int) {
	o := d.opts
	levels := d.student.Config.FPN.Levels
	rois, _ := giRegions(gis)
	var lv []int
	for _, list := range gis {
		start := len(lv)
		for _, gi := range list {
			lv = append(lv, LevelFor(gi.Box, o.LevelK0, d.levelS0, levels))
		}
		groups = append(groups, [2]int{start, len(lv)})
	}
	if len(lv) == 0 {
		return nil, nil, nil
	}
	strides := d.student.Config.Strides()
	opt := models.ROIPoolOptions{Size: o.ROISize, SamplingRatio: o.SamplingRatio}
	student = models.PoolROIs(func(l int) *engine.Tensor { return d.adapter.Convs[l].Forward(out.Features[l]) }, strides, rois, lv, opt)
	engine.NoGrad(func() {
		teacher = models.PoolROIs(func(l int) *engine.Tensor { return tout.Features[l] }, strides, rois, lv, opt)
	})
	return student, teacher, groups
}

// giRegions returns the GIs of a batch as ROI rows (batch index, x1, y1,
// x2, y2), image-major, and their count.
func giRegions(gis [][]GI) ([]float32, int) {
	var rois []float32
	for i, list := range gis {
		for _, gi := range list {
			rois = append(rois, float32(i), gi.Box[0], gi.Box[1], gi.Box[2], gi.Box[3])
		}
	}
	return rois, len(rois) / 5
}

// boxHeadResponse distils a two-stage pair's box heads on the given
// regions: both heads run on the same boxes (ROIAlign of each model's own
// pyramid, by its own level rule) and ROIResponseLoss compares them; the
// terms are added under the given part names.
func (d *Distiller) boxHeadResponse(st *Step, out, tout *models.Outputs, gis [][]GI, clsPart, regPart string) error {
	o := d.opts
	rois, g := giRegions(gis)
	if g == 0 {
		st.Parts[clsPart] += 0
		st.Parts[regPart] += 0
		return nil
	}
	sCls, sReg := d.student.ROIHeadForward(out.Features, rois)
	tCls, tReg, err := d.roiTeacher.ROIHead(tout.Features, rois)
	if err != nil {
		return err
	}
	cls, reg := ROIResponseLoss(sCls, tCls, sReg, tReg)
	st.add(clsPart, o.ResponseWeight*o.ClsWeight, cls)
	st.add(regPart, o.ResponseWeight*o.RegWeight, reg)
	return nil
}

func concat(ts []*engine.Tensor) *engine.Tensor {
	if len(ts) == 1 {
		return ts[0]
	}
	return engine.Concat(0, ts...)
}

// count adds a batch's GIs to the statistics.
func (d *Distiller) count(gis [][]GI) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Images += len(gis)
	for _, list := range gis {
		d.stats.GIs += len(list)
		for _, g := range list {
			d.stats.ByType[g.Type]++
			if g.FromTeacher {
				d.stats.FromTeacher++
			}
		}
	}
}

// adaptAll passes every student FPN level through its adaptation conv.
func (d *Distiller) adaptAll(out *models.Outputs) []*engine.Tensor {
	adapted := make([]*engine.Tensor, len(out.Features))
	for l, f := range out.Features {
		adapted[l] = d.adapter.Convs[l].Forward(f)
	}
	return adapted
}

// fitNet imitates every FPN map whole.
func (d *Distiller) fitNet(st *Step, out, tout *models.Outputs) {
	st.add(PartFitNet, d.opts.FeatureWeight, FitNetLoss(d.adaptAll(out), tout.Features))
}

// fineGrained imitates the FPN maps inside Wang et al.'s near-object mask.
func (d *Distiller) fineGrained(st *Step, out, tout *models.Outputs, targets [][]dataset.Target) {
	masks := d.imitationMasks(out, targets)
	st.add(PartFineGrained, d.opts.FeatureWeight, MaskedImitationLoss(d.adaptAll(out), tout.Features, masks))
}

// imitationMasks builds Wang et al.'s fine-grained imitation mask per level
// ([N, 1, H, W]): for each ground-truth box, the IoU of every anchor with
// it; the anchors above ψ times the box's best IoU mark their location.
// FCOS has no anchors, so each location gets a virtual square anchor of
// side 4·stride (RetinaNet's usual base size), which makes the same rule
// apply.
func (d *Distiller) imitationMasks(out *models.Outputs, targets [][]dataset.Target) []*engine.Tensor {
	n, h, w := out.Features[0].Dim(0), out.InputH, out.InputW
	p := d.student.Priors(h, w)
	anchors := p.Anchors
	if anchors == nil {
		anchors = make([]float32, 4*p.Len())
		for i := 0; i < p.Len(); i++ {
			half := 2 * p.Strides[i]
			x, y := p.Points[2*i], p.Points[2*i+1]
			copy(anchors[4*i:], []float32{x - half, y - half, x + half, y + half})
		}
	}
	masks := make([][]float32, len(p.Levels))
	for l, lv := range p.Levels {
		masks[l] = make([]float32, n*lv.H*lv.W)
	}
	a := p.NumAnchors
	for i := 0; i < n; i++ {
		gts := targetBoxes(targets[i])
		g := len(gts) / 4
		if g == 0 {
			continue
		}
		ious := geom.IoUMatrix(anchors, gts) // R×G
		for j := 0; j < g; j++ {
			var best float32
			for r := 0; r < p.Len(); r++ {
				best = max(best, ious[r*g+j])
			}
			if best <= 0 {
				continue
			}
			thr := d.opts.FineGrainedThreshold * best
			for r := 0; r < p.Len(); r++ {
				if ious[r*g+j] > thr || ious[r*g+j] == best {
					l := p.Level[r]
					lv := p.Levels[l]
					cell := (r - lv.Start) / a
					masks[l][i*lv.H*lv.W+cell] = 1
				}
			}
		}
	}
	out2 := make([]*engine.Tensor, len(masks))
	for l, lv := range p.Levels {
		out2[l] = engine.FromHost(masks[l], n, 1, lv.H, lv.W)
	}
	return out2
}

// responseAll distils the head outputs at every position; for a two-stage
// pair also the box heads, on the student's own proposals (the best
// roi_head.batch_per_image of each image, with the training settings), so
// the baseline sees what the student's second stage trains on without any
// instance selection.
func (d *Distiller) responseAll(st *Step, out, tout *models.Outputs) error {
	s := flatten(out)
	var t flat
	engine.NoGrad(func() { t = flatten(tout) })
	total := s.cls.Dim(0) * s.cls.Dim(1)
	rows := make([]int, total)
	for i := range rows {
		rows[i] = i
	}
	var tProb *engine.Tensor
	engine.NoGrad(func() { tProb = engine.Sigmoid(t.cls) })
	cls, reg := d.response(s, t, tProb, rows, total, float32(total))
	st.add(PartKDCls, d.opts.ResponseWeight*d.opts.ClsWeight, cls)
	st.add(PartKDReg, d.opts.ResponseWeight*d.opts.RegWeight, reg)
	if d.roiTeacher == nil {
		return nil
	}
	limit := d.student.Config.ROIHead.BatchPerImage
	props := d.student.Proposals(out, true)
	regions := make([][]GI, len(props))
	for i, p := range props {
		for q := range min(p.Len(), limit) {
			regions[i] = append(regions[i], GI{Box: [4]float32(p.Boxes[4*q : 4*q+4])})
		}
	}
	return d.boxHeadResponse(st, out, tout, regions, PartKDROICls, PartKDROIReg)
}
