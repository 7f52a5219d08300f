package export

import (
	"context"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/models"
)

// TestInferRunsDecodedExport serves a decoded export through infer's gidedge
// adapter, end to end from a non-square image (so letterbox padding moves
// the frame), and checks every detection against the engine run on the same
// preprocessed tensor: same class and score, and a box that is the engine's
// decoded box mapped back to source pixels.
func TestInferRunsDecodedExport(t *testing.T) {
	needORT(t)
	const srcW, srcH = 120, 72
	img := gradientImage(srcW, srcH)
	for _, family := range []string{models.FamilyRetinaNet, models.FamilyFCOS} {
		t.Run(family, func(t *testing.T) {
			cfg := tinyConfig(t, family, models.BackboneResNet)
			if cfg.Input.Resize != models.ResizeLetterbox {
				t.Fatalf("tiny config resize %q, the test wants letterbox", cfg.Input.Resize)
			}
			d := tinyDetector(t, cfg, 11)
			det := exportAndOpen(t, d)
			defer det.Close()
			desc := det.Describe()
			if desc.Adapter != "gidedge" {
				t.Fatalf("adapter %q, want gidedge", desc.Adapter)
			}
			const threshold = 0.55
			res, err := det.Detect(context.Background(), img, infer.Params{ScoreThreshold: threshold, IoUThreshold: 0.5, MaxDetections: 20})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Detections) == 0 {
				t.Fatal("no detections; the test model should score some positions above the threshold")
			}

			// The engine on the very tensor the server built.
			pre := desc.Input
			x := make([]float32, pre.TensorLen())
			tr, err := pre.Apply(img, x)
			if err != nil {
				t.Fatal(err)
			}
			if tr.PadY == 0 || tr.PadX != 0 {
				t.Fatalf("transform %+v: want vertical letterbox padding for a wide image", tr)
			}
			size := cfg.Input.Size
			var scores, boxes []float32
			engine.NoGrad(func() {
				o := d.Forward(engine.FromHost(x, 1, 3, size, size), false)
				cls, reg := models.Flatten(o)
				scores = engine.Sigmoid(cls).ToHost()
				if family == models.FamilyFCOS {
					// FCOS ranks by √(class probability · centerness).
					ctr := engine.Sigmoid(models.FlattenCenterness(o)).ToHost()
					k := cfg.NumClasses
					for i := range scores {
						scores[i] = float32(math.Sqrt(float64(scores[i] * ctr[i/k])))
					}
				}
				boxes = d.DecodeBoxes(reg.ToHost(), d.Priors(size, size))
			})
			k := cfg.NumClasses
			w, h := float32(size), float32(size)
			for _, got := range res.Detections {
				if got.Label != classNames[got.Class] {
					t.Errorf("detection %+v: label %q, want %q", got, got.Label, classNames[got.Class])
				}
				if got.Box[0] < 0 || got.Box[1] < 0 || got.Box[2] > srcW || got.Box[3] > srcH {
					t.Errorf("detection %+v lies outside the %dx%d source", got, srcW, srcH)
				}
				found := false
				for r := 0; r < len(scores)/k && !found; r++ {
					s := scores[r*k+got.Class]
					if math.Abs(float64(s-got.Score)) > 1e-4 {
						continue
					}
					b := boxes[4*r : 4*r+4]
					x1, y1, x2, y2 := tr.ToSource(clampF(b[0], w), clampF(b[1], h), clampF(b[2], w), clampF(b[3], h))
					want := [4]float32{x1, y1, x2, y2}
					found = true
					for j := range want {
						if math.Abs(float64(want[j]-got.Box[j])) > 1e-2 {
							found = false
						}
					}
				}
				if !found {
					t.Errorf("detection %+v matches no engine prediction of its class mapped to source pixels", got)
				}
			}
			t.Logf("%d detections, top %+v", len(res.Detections), res.Detections[0])

			{
				// The engine's own postprocessing must find the same best
				// detection (FCOS included: the export carries centerness).
				d.Config.Postprocess.ScoreThreshold = threshold
				var top models.Detection
				engine.NoGrad(func() {
					dets := d.Postprocess(d.Forward(engine.FromHost(x, 1, 3, size, size), false))
					top = dets[0][0]
				})
				x1, y1, x2, y2 := tr.ToSource(top.Box[0], top.Box[1], top.Box[2], top.Box[3])
				best := res.Detections[0]
				if best.Class != top.Class || math.Abs(float64(best.Score-top.Score)) > 1e-4 ||
					math.Abs(float64(best.Box[0]-x1)) > 1e-2 || math.Abs(float64(best.Box[1]-y1)) > 1e-2 ||
					math.Abs(float64(best.Box[2]-x2)) > 1e-2 || math.Abs(float64(best.Box[3]-y2)) > 1e-2 {
					t.Errorf("best detection %+v, engine postprocess gives %+v → source %v", best, top, [4]float32{x1, y1, x2, y2})
				}
			}
		})
	}
}

func clampF(v, hi float32) float32 { return min(max(v, 0), hi) }

// gradientImage is a non-square test picture (so letterbox padding moves
// the frame) whose colours vary everywhere.
func gradientImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(2 * x), uint8(3 * y), uint8((x * y) % 251), 255})
		}
	}
	return img
}

// exportAndOpen exports d and opens the file as infer would serve it.
func exportAndOpen(t *testing.T, d *models.Detector) *infer.Detector {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.onnx")
	if _, err := Export(d, out, Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	det, err := infer.Open(out, infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return det
}
