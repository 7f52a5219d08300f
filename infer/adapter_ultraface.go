package infer

import "fmt"

// UltraFace (Ultra-Light-Fast RFB/slim): outputs "scores" [1,R,2] (softmax,
// column 1 = face) and "boxes" [1,R,4], corners normalised to 0..1; the
// anchor decoding is inside the graph.
type ultrafaceAdapter struct {
	pre Preprocess
}

func matchUltraFace(sig Signature) (Adapter, bool, error) {
	scores, ok1 := sig.Output("scores")
	boxes, ok2 := sig.Output("boxes")
	if !ok1 || !ok2 || len(sig.Outputs) != 2 {
		return nil, false, nil
	}
	if len(scores.Shape) != 3 || scores.Shape[2] != 2 || len(boxes.Shape) != 3 || boxes.Shape[2] != 4 {
		return nil, false, nil
	}
	in, h, w, err := imageInput(sig)
	if err != nil {
		return nil, true, err
	}
	if h == 0 || w == 0 {
		return nil, true, fmt.Errorf("input %q has dynamic size %v, want a fixed H and W", in.Name, in.Shape)
	}
	return &ultrafaceAdapter{pre: Preprocess{
		Width: w, Height: h, Layout: LayoutNCHW, ChannelOrder: OrderRGB, Resize: ResizeStretch,
		PixelScale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128},
	}}, true, nil
}

func (a *ultrafaceAdapter) Name() string           { return "ultraface" }
func (a *ultrafaceAdapter) Preprocess() Preprocess { return a.pre }
func (a *ultrafaceAdapter) ClassNames() []string   { return []string{"face"} }

// Defaults follow the UltraFace demo: score 0.7, NMS IoU 0.3.
func (a *ultrafaceAdapter) Defaults() Params {
	return Params{ScoreThreshold: 0.7, IoUThreshold: 0.3, MaxDetections: 200}
}

func (a *ultrafaceAdapter) Decode(out Outputs, p Params, dst []Detection) ([]Detection, error) {
	scores, err := out.get("scores", 1, -1, 2)
	if err != nil {
		return dst, err
	}
	n := scores.Shape[1]
	boxes, err := out.get("boxes", 1, n, 4)
	if err != nil {
		return dst, err
	}
	w, h := float32(a.pre.Width), float32(a.pre.Height)
	for i := range int(n) {
		s := scores.Data[2*i+1]
		if s <= p.ScoreThreshold {
			continue
		}
		b := boxes.Data[4*i : 4*i+4]
		dst = append(dst, Detection{
			Box:   [4]float32{clamp(b[0], 0, 1) * w, clamp(b[1], 0, 1) * h, clamp(b[2], 0, 1) * w, clamp(b[3], 0, 1) * h},
			Score: s,
		})
	}
	return dst, nil
}
