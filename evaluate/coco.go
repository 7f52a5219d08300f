package evaluate

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/gidedge/gidedge/dataset"
)

var (
	// ErrUnknownImage reports a detection whose image_id is not in the
	// evaluated dataset split.
	ErrUnknownImage = errors.New("evaluate: detection for an image not in the dataset")
	// ErrUnknownCategory reports a detection whose category_id is not a
	// category of the dataset.
	ErrUnknownCategory = errors.New("evaluate: detection with a category not in the dataset")
	// ErrBadDetection reports a detection with a non-finite box or score.
	ErrBadDetection = errors.New("evaluate: invalid detection")
)

// Detection is one scored box in COCO results form.
type Detection struct {
	ImageID    int64      `json:"image_id"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"` // x, y, width, height in original-image pixels
	Score      float64    `json:"score"`
}

// FromBox makes a Detection from an x1, y1, x2, y2 box.
func FromBox(imageID, categoryID int64, b dataset.Box, score float64) Detection {
	return Detection{ImageID: imageID, CategoryID: categoryID, BBox: [4]float64{b.X1, b.Y1, b.X2 - b.X1, b.Y2 - b.Y1}, Score: score}
}

// Box returns the detection as x1, y1, x2, y2.
func (d Detection) Box() dataset.Box {
	return dataset.Box{X1: d.BBox[0], Y1: d.BBox[1], X2: d.BBox[0] + d.BBox[2], Y2: d.BBox[1] + d.BBox[3]}
}

// ClassAP is the result for one category. AP, AP50 and AP75 are at 100
// detections per image over all areas; -1 when the category has no
// (non-crowd) ground truth.
type ClassAP struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	AP          float64 `json:"AP"`
	AP50        float64 `json:"AP50"`
	AP75        float64 `json:"AP75"`
	GroundTruth int     `json:"ground_truth"` // objects that are not crowd
	Detections  int     `json:"detections"`
	// Precision50 is the interpolated precision at each RecallThresholds
	// point at IoU 0.5 (-1 when undefined).
	Precision50 []float64 `json:"-"`
}

// Metrics are the COCOeval summary numbers and the curves behind them.
type Metrics struct {
	AP       float64 `json:"AP"`
	AP50     float64 `json:"AP50"`
	AP75     float64 `json:"AP75"`
	APSmall  float64 `json:"AP_small"`
	APMedium float64 `json:"AP_medium"`
	APLarge  float64 `json:"AP_large"`
	AR1      float64 `json:"AR1"`
	AR10     float64 `json:"AR10"`
	AR100    float64 `json:"AR100"`
	ARSmall  float64 `json:"AR_small"`
	ARMedium float64 `json:"AR_medium"`
	ARLarge  float64 `json:"AR_large"`

	PerClass []ClassAP `json:"per_class"` // in dataset class order

	Images      int `json:"images"`
	GroundTruth int `json:"ground_truth"` // non-crowd objects
	Crowd       int `json:"crowd"`
	Detections  int `json:"detections"`

	// RecallThresholds are the 101 recall points 0, 0.01, …, 1.
	RecallThresholds []float64 `json:"-"`
	// Precision50 and Precision75 are the interpolated precision at each
	// recall point, averaged over the categories that have ground truth
	// (all areas, 100 detections), at IoU 0.5 and 0.75; -1 when undefined.
	Precision50 []float64 `json:"-"`
	Precision75 []float64 `json:"-"`
}

// COCOeval's default parameters for bounding boxes.
var (
	iouThresholds    = linspace(0.5, 0.95, 10)
	recallThresholds = linspace(0, 1, 101)
	maxDets          = [3]int{1, 10, 100}
	areaRanges       = [4][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}}
)

const (
	areaAll = iota
	areaSmall
	areaMedium
	areaLarge
)

// linspace matches numpy.linspace bit for bit (i*step + start, last point
// exactly stop), so recall thresholds compare with recalls as in
// pycocotools.
func linspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

type gtBox struct {
	box   [4]float64
	area  float64
	crowd bool
}

type dtBox struct {
	box   [4]float64
	area  float64
	score float64
}

// imageEval is COCOeval.evaluateImg's result for one image, category and
// area range.
type imageEval struct {
	scores   []float64 // detections in descending score order
	matched  [][]bool  // [iou threshold][detection]
	ignored  [][]bool  // [iou threshold][detection]
	gtIgnore []bool
}

// COCO evaluates dets against every image of ds in the three steps of
// pycocotools' COCOeval: evaluate matches each image's detections to its
// ground truth, accumulate turns the matches into precision and recall per
// IoU threshold, class, area range and detection limit, and summarize
// averages those into the Metrics.
func COCO(ds *dataset.Dataset, dets []Detection) (*Metrics, error) {
	e, err := newEvaluation(ds, dets)
	if err != nil {
		return nil, err
	}
	return e.summarize(e.accumulate(e.evaluate())), nil
}

// imageClass keys the boxes of one class in one image.
type imageClass struct {
	img   int64
	class int
}

// evaluation is one COCO evaluation's input, indexed the way COCOeval
// walks it, and the counts the Metrics report.
type evaluation struct {
	ds *dataset.Dataset
	// imgIDs ascending and catOrder (class indices by ascending category
	// id) are pycocotools' evaluation order, which decides how ties in
	// score are broken.
	imgIDs   []int64
	catOrder []int
	gts      map[imageClass][]gtBox
	dts      map[imageClass][]dtBox
	// counts fills the Metrics' image, ground-truth, crowd and detection
	// counts; perClassGT and perClassDets the per-class ones.
	counts                   Metrics
	perClassGT, perClassDets []int
}

// newEvaluation checks ds and dets and groups boxes by image and class.
func newEvaluation(ds *dataset.Dataset, dets []Detection) (*evaluation, error) {
	if ds == nil {
		return nil, fmt.Errorf("evaluate: nil dataset")
	}
	K := len(ds.Categories)
	e := &evaluation{
		ds:         ds,
		imgIDs:     make([]int64, len(ds.Images)),
		catOrder:   make([]int, K),
		gts:        map[imageClass][]gtBox{},
		dts:        map[imageClass][]dtBox{},
		counts:     Metrics{Images: len(ds.Images), Detections: len(dets)},
		perClassGT: make([]int, K), perClassDets: make([]int, K),
	}
	imgPos := make(map[int64]int, len(ds.Images))
	for i, im := range ds.Images {
		if _, dup := imgPos[im.ID]; dup {
			return nil, fmt.Errorf("evaluate: dataset %s has image id %d twice", ds.Name, im.ID)
		}
		e.imgIDs[i] = im.ID
		imgPos[im.ID] = i
	}
	sort.Slice(e.imgIDs, func(a, b int) bool { return e.imgIDs[a] < e.imgIDs[b] })
	catClass := make(map[int64]int, K)
	for k := range e.catOrder {
		e.catOrder[k] = k
		catClass[ds.Categories[k].ID] = k
	}
	sort.Slice(e.catOrder, func(a, b int) bool { return ds.Categories[e.catOrder[a]].ID < ds.Categories[e.catOrder[b]].ID })

	for _, im := range ds.Images {
		for _, o := range im.Objects {
			if o.Class < 0 || o.Class >= K {
				return nil, fmt.Errorf("evaluate: dataset %s image %d has class %d, want 0..%d", ds.Name, im.ID, o.Class, K-1)
			}
			k := imageClass{im.ID, o.Class}
			e.gts[k] = append(e.gts[k], gtBox{
				box:   [4]float64{o.Box.X1, o.Box.Y1, o.Box.X2 - o.Box.X1, o.Box.Y2 - o.Box.Y1},
				area:  o.Area,
				crowd: o.Crowd,
			})
			if o.Crowd {
				e.counts.Crowd++
			} else {
				e.counts.GroundTruth++
				e.perClassGT[o.Class]++
			}
		}
	}
	for i, d := range dets {
		if _, ok := imgPos[d.ImageID]; !ok {
			return nil, fmt.Errorf("%w: detection %d has image_id %d, which split %q of %s does not have", ErrUnknownImage, i, d.ImageID, ds.Split, ds.Name)
		}
		class, ok := catClass[d.CategoryID]
		if !ok {
			return nil, fmt.Errorf("%w: detection %d has category_id %d; the categories are %s", ErrUnknownCategory, i, d.CategoryID, categoryList(ds))
		}
		if err := checkDetection(d); err != nil {
			return nil, fmt.Errorf("%w: detection %d: %v", ErrBadDetection, i, err)
		}
		k := imageClass{d.ImageID, class}
		e.dts[k] = append(e.dts[k], dtBox{box: d.BBox, area: d.BBox[2] * d.BBox[3], score: d.Score})
		e.perClassDets[class]++
	}
	return e, nil
}

// evaluate is COCOeval.evaluate: for every class and area range, the
// matching of each image that has ground truth or detections of that
// class, in image id order ([class][area][image]).
func (e *evaluation) evaluate() [][][]*imageEval {
	maxDet := maxDets[len(maxDets)-1]
	evals := make([][][]*imageEval, len(e.ds.Categories))
	for _, k := range e.catOrder {
		evals[k] = make([][]*imageEval, len(areaRanges))
		for _, id := range e.imgIDs {
			g := e.gts[imageClass{id, k}]
			d := sortDetections(e.dts[imageClass{id, k}], maxDet)
			if len(g) == 0 && len(d) == 0 {
				continue
			}
			ious := iouMatrix(d, g)
			for a, rng := range areaRanges {
				evals[k][a] = append(evals[k][a], evaluateImage(g, d, ious, rng, maxDet))
			}
		}
	}
	return evals
}

// tables are COCOeval's accumulated precision [T][R][K][A][M] (IoU
// threshold, recall point, class, area range, detection limit) and recall
// [T][K][A][M], flat, with -1 where undefined (no ground truth).
type tables struct {
	K                 int
	precision, recall []float64
}

func (tb *tables) p(t, r, k, a, m int) *float64 {
	R, A, M := len(recallThresholds), len(areaRanges), len(maxDets)
	return &tb.precision[(((t*R+r)*tb.K+k)*A+a)*M+m]
}

func (tb *tables) r(t, k, a, m int) *float64 {
	A, M := len(areaRanges), len(maxDets)
	return &tb.recall[((t*tb.K+k)*A+a)*M+m]
}

// accumulate is COCOeval.accumulate: precision at every recall point and
// final recall for each IoU threshold, class, area range and detection
// limit.
func (e *evaluation) accumulate(evals [][][]*imageEval) *tables {
	T, R, K, A, M := len(iouThresholds), len(recallThresholds), len(e.ds.Categories), len(areaRanges), len(maxDets)
	tb := &tables{K: K, precision: make([]float64, T*R*K*A*M), recall: make([]float64, T*K*A*M)}
	for i := range tb.precision {
		tb.precision[i] = -1
	}
	for i := range tb.recall {
		tb.recall[i] = -1
	}
	for k := range evals {
		for a, images := range evals[k] {
			if len(images) == 0 {
				continue
			}
			for mi, md := range maxDets {
				prec, rec, ok := precisionRecall(images, md)
				if !ok {
					continue
				}
				for t := range T {
					*tb.r(t, k, a, mi) = rec[t]
					for r := range R {
						*tb.p(t, r, k, a, mi) = prec[t][r]
					}
				}
			}
		}
	}
	return tb
}

// Indices into the tables that summarize reads.
const (
	allIoUs = -1 // every IoU threshold
	iou50   = 0  // IoU 0.50
	iou75   = 5  // IoU 0.75
)

// meanAP averages the defined precision over the recall points and the
// classes (or one class), at one IoU threshold or all, for an area range
// and detection limit.
func (tb *tables) meanAP(t, k, a, m int) float64 {
	var sum float64
	n := 0
	for ti := range iouThresholds {
		if t != allIoUs && ti != t {
			continue
		}
		for r := range recallThresholds {
			for ki := range tb.K {
				if k >= 0 && ki != k {
					continue
				}
				if v := *tb.p(ti, r, ki, a, m); v > -1 {
					sum += v
					n++
				}
			}
		}
	}
	return meanOrUndefined(sum, n)
}

// meanAR averages the defined recall over IoU thresholds and classes.
func (tb *tables) meanAR(a, m int) float64 {
	var sum float64
	n := 0
	for t := range iouThresholds {
		for k := range tb.K {
			if v := *tb.r(t, k, a, m); v > -1 {
				sum += v
				n++
			}
		}
	}
	return meanOrUndefined(sum, n)
}

// curve is the precision at each recall point for one IoU threshold over
// all areas at the largest detection limit: one class's, or the mean over
// the classes where it is defined when k < 0.
func (tb *tables) curve(t, k int) []float64 {
	last := len(maxDets) - 1
	out := make([]float64, len(recallThresholds))
	for r := range out {
		if k >= 0 {
			out[r] = *tb.p(t, r, k, areaAll, last)
			continue
		}
		var sum float64
		n := 0
		for ki := range tb.K {
			if v := *tb.p(t, r, ki, areaAll, last); v > -1 {
				sum += v
				n++
			}
		}
		out[r] = meanOrUndefined(sum, n)
	}
	return out
}

// summarize is COCOeval.summarize plus the per-class numbers and the
// precision-recall curves.
func (e *evaluation) summarize(tb *tables) *Metrics {
	const allClasses = -1
	last := len(maxDets) - 1
	m := e.counts
	m.RecallThresholds = append([]float64(nil), recallThresholds...)
	m.AP = tb.meanAP(allIoUs, allClasses, areaAll, last)
	m.AP50 = tb.meanAP(iou50, allClasses, areaAll, last)
	m.AP75 = tb.meanAP(iou75, allClasses, areaAll, last)
	m.APSmall = tb.meanAP(allIoUs, allClasses, areaSmall, last)
	m.APMedium = tb.meanAP(allIoUs, allClasses, areaMedium, last)
	m.APLarge = tb.meanAP(allIoUs, allClasses, areaLarge, last)
	m.AR1 = tb.meanAR(areaAll, 0)
	m.AR10 = tb.meanAR(areaAll, 1)
	m.AR100 = tb.meanAR(areaAll, last)
	m.ARSmall = tb.meanAR(areaSmall, last)
	m.ARMedium = tb.meanAR(areaMedium, last)
	m.ARLarge = tb.meanAR(areaLarge, last)
	m.Precision50 = tb.curve(iou50, allClasses)
	m.Precision75 = tb.curve(iou75, allClasses)
	m.PerClass = make([]ClassAP, tb.K)
	for k, c := range e.ds.Categories {
		m.PerClass[k] = ClassAP{
			ID: c.ID, Name: c.Name,
			AP:          tb.meanAP(allIoUs, k, areaAll, last),
			AP50:        tb.meanAP(iou50, k, areaAll, last),
			AP75:        tb.meanAP(iou75, k, areaAll, last),
			GroundTruth: e.perClassGT[k], Detections: e.perClassDets[k],
			Precision50: tb.curve(iou50, k),
		}
	}
	return &m
}

func meanOrUndefined(sum float64, n int) float64 {
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

func categoryList(ds *dataset.Dataset) string {
	s := ""
	for i, c := range ds.Categories {
		if i == 12 {
			return s + fmt.Sprintf(", … (%d in all)", len(ds.Categories))
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", c.ID, c.Name)
	}
	return s
}

func checkDetection(d Detection) error {
	for i, v := range d.BBox {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bbox[%d] is %v, want a finite number", i, v)
		}
	}
	if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
		return fmt.Errorf("score is %v, want a finite number", d.Score)
	}
	return nil
}

// sortDetections orders by descending score, keeping the input order among
// equal scores (numpy's mergesort is stable), and keeps the first n.
func sortDetections(d []dtBox, n int) []dtBox {
	if len(d) == 0 {
		return nil
	}
	s := append([]dtBox(nil), d...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].score > s[j].score })
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// iouMatrix is maskUtils.iou for boxes: ious[d][g], with the detection's
// area as the denominator when g is crowd.
func iouMatrix(d []dtBox, g []gtBox) [][]float64 {
	out := make([][]float64, len(d))
	for i, db := range d {
		out[i] = make([]float64, len(g))
		da := db.box[2] * db.box[3]
		for j, gb := range g {
			w := math.Min(db.box[0]+db.box[2], gb.box[0]+gb.box[2]) - math.Max(db.box[0], gb.box[0])
			if w <= 0 {
				continue
			}
			h := math.Min(db.box[1]+db.box[3], gb.box[1]+gb.box[3]) - math.Max(db.box[1], gb.box[1])
			if h <= 0 {
				continue
			}
			inter := w * h
			union := da + gb.box[2]*gb.box[3] - inter
			if gb.crowd {
				union = da
			}
			if union > 0 {
				out[i][j] = inter / union
			}
		}
	}
	return out
}

// evaluateImage is COCOeval.evaluateImg: greedy matching of detections
// (already sorted and cut to maxDet) to ground truth, per IoU threshold.
func evaluateImage(gt []gtBox, dt []dtBox, ious [][]float64, rng [2]float64, maxDet int) *imageEval {
	G := len(gt)
	ignore := make([]bool, G)
	for j, g := range gt {
		ignore[j] = g.crowd || g.area < rng[0] || g.area > rng[1]
	}
	// Ground truth that counts comes first (stable), so a detection prefers
	// it over an ignored one.
	order := make([]int, G)
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(a, b int) bool { return !ignore[order[a]] && ignore[order[b]] })
	gIgnore := make([]bool, G)
	gCrowd := make([]bool, G)
	for j, o := range order {
		gIgnore[j] = ignore[o]
		gCrowd[j] = gt[o].crowd
	}
	if len(dt) > maxDet {
		dt = dt[:maxDet]
	}
	D := len(dt)
	T := len(iouThresholds)
	e := &imageEval{scores: make([]float64, D), matched: make([][]bool, T), ignored: make([][]bool, T), gtIgnore: gIgnore}
	for i, d := range dt {
		e.scores[i] = d.score
	}
	for t, thr := range iouThresholds {
		e.matched[t] = make([]bool, D)
		e.ignored[t] = make([]bool, D)
		gtTaken := make([]bool, G)
		for i := range dt {
			best := math.Min(thr, 1-1e-10)
			m := -1
			for j := range G {
				if gtTaken[j] && !gCrowd[j] {
					continue
				}
				if m > -1 && !gIgnore[m] && gIgnore[j] {
					break
				}
				if v := ious[i][order[j]]; v >= best {
					best, m = v, j
				}
			}
			if m == -1 {
				continue
			}
			e.ignored[t][i] = gIgnore[m]
			e.matched[t][i] = true
			gtTaken[m] = true
		}
		// An unmatched detection outside the area range is not counted
		// against this range.
		for i, d := range dt {
			if !e.matched[t][i] && (d.area < rng[0] || d.area > rng[1]) {
				e.ignored[t][i] = true
			}
		}
	}
	return e
}

// precisionRecall is COCOeval.accumulate's inner step for one class, area
// range and detection limit: precision at each recall threshold and final
// recall, per IoU threshold. ok is false when there is no ground truth to
// find.
func precisionRecall(evals []*imageEval, maxDet int) (prec [][]float64, rec []float64, ok bool) {
	type det struct {
		score float64
		img   int
		i     int
	}
	var all []det
	npig := 0
	for n, e := range evals {
		for i := 0; i < len(e.scores) && i < maxDet; i++ {
			all = append(all, det{e.scores[i], n, i})
		}
		for _, ig := range e.gtIgnore {
			if !ig {
				npig++
			}
		}
	}
	if npig == 0 {
		return nil, nil, false
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].score > all[b].score })
	T, R := len(iouThresholds), len(recallThresholds)
	prec = make([][]float64, T)
	rec = make([]float64, T)
	nd := len(all)
	rc := make([]float64, nd)
	pr := make([]float64, nd)
	eps := math.Nextafter(1, 2) - 1 // np.spacing(1)
	for t := range T {
		tp, fp := 0.0, 0.0
		for n, d := range all {
			e := evals[d.img]
			if !e.ignored[t][d.i] {
				if e.matched[t][d.i] {
					tp++
				} else {
					fp++
				}
			}
			rc[n] = tp / float64(npig)
			pr[n] = tp / (fp + tp + eps)
		}
		if nd > 0 {
			rec[t] = rc[nd-1]
		}
		// Make precision monotonically decreasing from the right.
		for i := nd - 1; i > 0; i-- {
			if pr[i] > pr[i-1] {
				pr[i-1] = pr[i]
			}
		}
		q := make([]float64, R)
		for r, thr := range recallThresholds {
			// numpy.searchsorted(rc, thr, side="left").
			i := sort.SearchFloat64s(rc, thr)
			if i >= nd {
				break // the remaining recall points stay at precision 0
			}
			q[r] = pr[i]
		}
		prec[t] = q
	}
	return prec, rec, true
}
