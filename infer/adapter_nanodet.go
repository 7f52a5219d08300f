package infer

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// NanoDet-m as exported by the upstream project: one cls_pred_stride_S
// [1,N,C] (sigmoid scores) and one dis_pred_stride_S [1,N,4*(regMax+1)]
// (distance distributions) per stride, positions row-major over (y, x).
const (
	nanodetClsPrefix = "cls_pred_stride_"
	nanodetDisPrefix = "dis_pred_stride_"
)

type nanodetLevel struct {
	stride       int
	cls, dis     string
	gridW, gridH int
}

type nanodetAdapter struct {
	pre     Preprocess
	classes []string
	levels  []nanodetLevel
	bins    int // regMax+1
}

func matchNanoDet(sig Signature) (Adapter, bool, error) {
	var strides []int
	for _, o := range sig.Outputs {
		if s, ok := strings.CutPrefix(o.Name, nanodetClsPrefix); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return nil, false, nil
			}
			strides = append(strides, n)
		}
	}
	if len(strides) == 0 {
		return nil, false, nil
	}
	slices.Sort(strides)
	in, h, w, err := imageInput(sig)
	if err != nil {
		return nil, true, err
	}
	if h == 0 || w == 0 {
		return nil, true, fmt.Errorf("input %q has dynamic size %v, want a fixed H and W", in.Name, in.Shape)
	}
	a := &nanodetAdapter{pre: Preprocess{
		Width: w, Height: h, Layout: LayoutNCHW, ChannelOrder: OrderBGR, Resize: ResizeLetter,
		PadValue: 0, PixelScale: 1,
		Mean: [3]float32{103.53, 116.28, 123.675}, Std: [3]float32{57.375, 57.12, 58.395},
	}}
	numClasses := -1
	for _, s := range strides {
		l := nanodetLevel{stride: s, cls: nanodetClsPrefix + strconv.Itoa(s), dis: nanodetDisPrefix + strconv.Itoa(s),
			gridW: (w + s - 1) / s, gridH: (h + s - 1) / s}
		cls, _ := sig.Output(l.cls)
		dis, ok := sig.Output(l.dis)
		if !ok {
			return nil, true, fmt.Errorf("output %q has no matching %q", l.cls, l.dis)
		}
		n := int64(l.gridW * l.gridH)
		if len(cls.Shape) != 3 || (cls.Shape[1] >= 0 && cls.Shape[1] != n) || cls.Shape[2] <= 0 {
			return nil, true, fmt.Errorf("output %q has shape %v, want [1,%d,C]", l.cls, cls.Shape, n)
		}
		if len(dis.Shape) != 3 || (dis.Shape[1] >= 0 && dis.Shape[1] != n) || dis.Shape[2] <= 0 || dis.Shape[2]%4 != 0 {
			return nil, true, fmt.Errorf("output %q has shape %v, want [1,%d,4*bins]", l.dis, dis.Shape, n)
		}
		if numClasses >= 0 && int(cls.Shape[2]) != numClasses {
			return nil, true, fmt.Errorf("output %q has %d classes, other strides have %d", l.cls, cls.Shape[2], numClasses)
		}
		numClasses = int(cls.Shape[2])
		a.bins = int(dis.Shape[2]) / 4
		a.levels = append(a.levels, l)
	}
	a.classes = classNames(numClasses)
	return a, true, nil
}

// classNames names the classes of a third-party detector: COCO's 80 when
// it predicts 80, else class_0, class_1, ….
func classNames(k int) []string {
	if k == len(COCOClassNames) {
		return COCOClassNames
	}
	names := make([]string, k)
	for i := range names {
		names[i] = "class_" + strconv.Itoa(i)
	}
	return names
}

func (a *nanodetAdapter) Name() string           { return "nanodet" }
func (a *nanodetAdapter) Preprocess() Preprocess { return a.pre }
func (a *nanodetAdapter) ClassNames() []string   { return a.classes }

// Defaults follow the NanoDet demo: score 0.35, NMS IoU 0.6.
func (a *nanodetAdapter) Defaults() Params {
	return Params{ScoreThreshold: 0.35, IoUThreshold: 0.6, MaxDetections: 100}
}

func (a *nanodetAdapter) Decode(out Outputs, p Params, dst []Detection) ([]Detection, error) {
	nc := int64(len(a.classes))
	w, h := float32(a.pre.Width), float32(a.pre.Height)
	var dist [4]float32
	for _, l := range a.levels {
		n := int64(l.gridW * l.gridH)
		cls, err := out.get(l.cls, 1, n, nc)
		if err != nil {
			return dst, err
		}
		dis, err := out.get(l.dis, 1, n, int64(4*a.bins))
		if err != nil {
			return dst, err
		}
		s := float32(l.stride)
		for pos := range int(n) {
			scores := cls.Data[pos*int(nc) : (pos+1)*int(nc)]
			// Decode the box only for positions with some class above threshold.
			if slices.Max(scores) <= p.ScoreThreshold {
				continue
			}
			reg := dis.Data[pos*4*a.bins : (pos+1)*4*a.bins]
			for side := range 4 {
				dist[side] = expectedBin(reg[side*a.bins:(side+1)*a.bins]) * s
			}
			cx := float32(pos%l.gridW)*s + (s-1)/2
			cy := float32(pos/l.gridW)*s + (s-1)/2
			box := [4]float32{
				clamp(cx-dist[0], 0, w), clamp(cy-dist[1], 0, h),
				clamp(cx+dist[2], 0, w), clamp(cy+dist[3], 0, h),
			}
			for c, sc := range scores {
				if sc > p.ScoreThreshold {
					dst = append(dst, Detection{Box: box, Score: sc, Class: c})
				}
			}
		}
	}
	return dst, nil
}

// expectedBin is Σ softmax(logits)_i · i, the expected distance in strides.
func expectedBin(logits []float32) float32 {
	m := slices.Max(logits)
	var sum, weighted float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		sum += e
		weighted += e * float64(i)
	}
	return float32(weighted / sum)
}
