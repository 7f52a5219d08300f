package inproc

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/sharedtest"
)

func TestInProcessMeasure(t *testing.T) {
	tg, err := Open(sharedtest.Dir(t, "models", "nanodet_m_320.onnx"), infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	img, err := os.ReadFile(sharedtest.Dir(t, "data", "coco128", "images", "000000000036.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := benchlat.Measure(context.Background(), tg, [][]byte{img}, benchlat.Options{N: 8, Warmup: 2, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "nanodet_m_320" || r.Mode != "in-process" || r.SessionP50MS <= 0 || r.SessionP50MS > r.P50MS || r.RSSBytes < 10<<20 {
		t.Fatalf("result %+v", r)
	}
	if _, err := benchlat.Measure(context.Background(), tg, [][]byte{[]byte("not an image")}, benchlat.Options{N: 1, Concurrency: 1}); err == nil ||
		!strings.Contains(err.Error(), "unknown image format") {
		t.Fatalf("bad image: %v", err)
	}
}

func TestAccuracyOnCOCO128(t *testing.T) {
	if testing.Short() {
		t.Skip("runs NanoDet on 128 images")
	}
	ds, err := dataset.Load(sharedtest.Dir(t, "data", "coco128"), "")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Open(sharedtest.Dir(t, "models", "nanodet_m_320.onnx"), infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	m, err := Accuracy(context.Background(), tg, ds)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NanoDet-m on coco128: AP %.3f AP50 %.3f over %d images, %d detections", m.AP, m.AP50, m.Images, m.Detections)
	// NanoDet-m scores 20.6 mAP on COCO val2017; coco128 is a small train
	// sample, so only a plausible band is checked.
	if m.Images != 128 || m.AP < 0.12 || m.AP > 0.45 || m.AP50 <= m.AP {
		t.Fatalf("AP %.3f AP50 %.3f on %d images", m.AP, m.AP50, m.Images)
	}

	face, err := Open(sharedtest.Dir(t, "models", "ultraface_rfb_320.onnx"), infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer face.Close()
	if _, err := Accuracy(context.Background(), face, ds); err == nil || !strings.Contains(err.Error(), "share no name") {
		t.Fatalf("face model on COCO: %v", err)
	}
}
