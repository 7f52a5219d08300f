package evaluate

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/dataset"
)

// gt is a ground-truth box for building test datasets: x, y, w, h.
type gt struct {
	class int
	xywh  [4]float64
	crowd bool
	area  float64 // 0: box area
}

func makeDataset(cats []dataset.Category, images map[int64][]gt) *dataset.Dataset {
	ds := &dataset.Dataset{Name: "test", Split: "test", Categories: cats}
	for id, objs := range images {
		im := dataset.Image{ID: id, Width: 640, Height: 480}
		for _, g := range objs {
			b := dataset.Box{X1: g.xywh[0], Y1: g.xywh[1], X2: g.xywh[0] + g.xywh[2], Y2: g.xywh[1] + g.xywh[3]}
			area := g.area
			if area == 0 {
				area = b.Area()
			}
			im.Objects = append(im.Objects, dataset.Object{Box: b, Class: g.class, Crowd: g.crowd, Area: area})
		}
		ds.Images = append(ds.Images, im)
	}
	return ds
}

func det(img, cat int64, x, y, w, h, score float64) Detection {
	return Detection{ImageID: img, CategoryID: cat, BBox: [4]float64{x, y, w, h}, Score: score}
}

var oneClass = []dataset.Category{{ID: 1, Name: "thing"}}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func check(t *testing.T, name string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %.12f, want %.12f", name, got, want)
	}
}

func TestCOCOHandBuilt(t *testing.T) {
	// 51 of the 101 recall points (0.00 … 0.50) reach recall 1/2.
	half := 51.0 / 101
	tests := []struct {
		name   string
		cats   []dataset.Category
		images map[int64][]gt
		dets   []Detection
		want   map[string]float64
	}{
		{
			name:   "perfect detections",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}, {0, [4]float64{100, 100, 120, 80}, false, 0}}},
			dets:   []Detection{det(1, 1, 10, 10, 50, 50, 0.9), det(1, 1, 100, 100, 120, 80, 0.8)},
			// One detection per image finds one of two objects.
			want: map[string]float64{"AP": 1, "AP50": 1, "AP75": 1, "AR1": 0.5, "AR10": 1, "AR100": 1,
				"APMedium": 1, "APLarge": 1, "APSmall": -1},
		},
		{
			name:   "one object missed",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}, {0, [4]float64{100, 100, 50, 50}, false, 0}}},
			dets:   []Detection{det(1, 1, 10, 10, 50, 50, 0.9)},
			want:   map[string]float64{"AP": half, "AP50": half, "AP75": half, "AR100": 0.5},
		},
		{
			name:   "duplicate below the true positive costs nothing",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}}},
			dets:   []Detection{det(1, 1, 10, 10, 50, 50, 0.9), det(1, 1, 10, 10, 50, 50, 0.8)},
			want:   map[string]float64{"AP": 1, "AR100": 1},
		},
		{
			name:   "a duplicate between two hits is a false positive",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}, {0, [4]float64{100, 100, 50, 50}, false, 0}}},
			// TP FP TP: recall .5 .5 1, precision 1 .5 .667, interpolated
			// 1 .667 .667: 51 recall points at 1 and 50 at 2/3.
			dets: []Detection{det(1, 1, 10, 10, 50, 50, 0.9), det(1, 1, 10, 10, 50, 50, 0.8), det(1, 1, 100, 100, 50, 50, 0.7)},
			want: map[string]float64{"AP": (51 + 50*2.0/3) / 101, "AR100": 1},
		},
		{
			name:   "false positive ranked first",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}}},
			dets:   []Detection{det(1, 1, 300, 300, 50, 50, 0.95), det(1, 1, 10, 10, 50, 50, 0.9)},
			want:   map[string]float64{"AP": 0.5, "AP50": 0.5, "AR1": 0, "AR100": 1},
		},
		{
			name: "detections inside a crowd region are ignored",
			cats: oneClass,
			images: map[int64][]gt{1: {
				{0, [4]float64{10, 10, 50, 50}, false, 0},
				{0, [4]float64{200, 200, 300, 200}, true, 0},
			}},
			dets: []Detection{
				det(1, 1, 250, 250, 40, 40, 0.99), // inside the crowd box: IoU 1 by detection area
				det(1, 1, 350, 300, 60, 60, 0.98), // a second one matches the same crowd box
				det(1, 1, 10, 10, 50, 50, 0.9),
			},
			want: map[string]float64{"AP": 1, "AR1": 0, "AR100": 1},
		},
		{
			name: "crowd iou uses the detection area",
			cats: oneClass,
			images: map[int64][]gt{1: {
				{0, [4]float64{10, 10, 50, 50}, false, 0},
				{0, [4]float64{200, 200, 100, 100}, true, 0},
			}},
			// Half of this detection lies in the crowd box: IoU 0.5 there
			// (0.2 by the usual union), so it is ignored at IoU 0.5 and a
			// false positive ahead of the true one at 0.55 … 0.95.
			dets: []Detection{det(1, 1, 180, 200, 40, 100, 0.95), det(1, 1, 10, 10, 50, 50, 0.9)},
			want: map[string]float64{"AP": (1 + 9*0.5) / 10, "AP50": 1, "AP75": 0.5},
		},
		{
			name: "area ranges",
			cats: oneClass,
			images: map[int64][]gt{1: {
				{0, [4]float64{10, 10, 20, 20}, false, 0},     // small: 400 px²
				{0, [4]float64{100, 100, 100, 100}, false, 0}, // large: 10000 px²
			}},
			dets: []Detection{det(1, 1, 10, 10, 20, 20, 0.9)},
			want: map[string]float64{
				"AP": half, "APSmall": 1, "APMedium": -1, "APLarge": 0,
				"ARSmall": 1, "ARMedium": -1, "ARLarge": 0, "AR100": 0.5,
			},
		},
		{
			name: "the annotated area, not the box, picks the range",
			cats: oneClass,
			// A 40x40 box whose object covers 900 px² counts as small.
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 40, 40}, false, 900}}},
			dets:   []Detection{det(1, 1, 10, 10, 40, 40, 0.9)},
			want:   map[string]float64{"APSmall": 1, "APMedium": -1},
		},
		{
			name: "categories are matched separately",
			cats: []dataset.Category{{ID: 3, Name: "a"}, {ID: 17, Name: "b"}},
			images: map[int64][]gt{1: {
				{0, [4]float64{10, 10, 50, 50}, false, 0},
				{1, [4]float64{100, 100, 50, 50}, false, 0},
			}},
			// Right box, wrong class for the first object; the second is found.
			dets: []Detection{det(1, 17, 10, 10, 50, 50, 0.9), det(1, 17, 100, 100, 50, 50, 0.8)},
			// a: AP 0; b: a false positive first, then the hit: AP 0.5.
			want: map[string]float64{"AP": 0.25, "AP50": 0.25},
		},
		{
			name:   "no ground truth at all is undefined",
			cats:   oneClass,
			images: map[int64][]gt{1: nil},
			dets:   []Detection{det(1, 1, 10, 10, 50, 50, 0.9)},
			want:   map[string]float64{"AP": -1, "AP50": -1, "AR100": -1},
		},
		{
			name:   "no detections",
			cats:   oneClass,
			images: map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}}},
			want:   map[string]float64{"AP": 0, "AR100": 0},
		},
		{
			// Worked by hand. Image 1 has objects a and b, image 2 object c.
			// By score: d1 hits a (IoU 1), d2 misses in image 2, d3 hits c
			// with IoU 0.72, d4 hits b (IoU 1); three objects in all.
			// IoU 0.50–0.70 (5 thresholds): TP FP TP TP, recall 1/3 1/3 2/3 1,
			// precision 1 .5 .667 .75 → interpolated 1 .75 .75 .75:
			// 34 recall points at 1, 67 at .75, AP = 84.25/101.
			// IoU 0.75–0.95 (5 thresholds): TP FP FP TP, recall 1/3 1/3 1/3 2/3,
			// precision 1 .5 .333 .5 → 1 .5 .5 .5: 34 points at 1, 33 at .5,
			// 34 at 0, AP = 50.5/101 = .5.
			name: "hand-worked two images",
			cats: oneClass,
			images: map[int64][]gt{
				1: {{0, [4]float64{0, 0, 100, 100}, false, 0}, {0, [4]float64{200, 200, 100, 100}, false, 0}},
				2: {{0, [4]float64{0, 0, 100, 100}, false, 0}},
			},
			dets: []Detection{
				det(1, 1, 0, 0, 100, 100, 0.9),
				det(2, 1, 300, 300, 50, 50, 0.8),
				det(2, 1, 0, 0, 100, 72, 0.7),
				det(1, 1, 200, 200, 100, 100, 0.6),
			},
			want: map[string]float64{
				"AP":   (84.25/101 + 0.5) / 2,
				"AP50": 84.25 / 101, "AP75": 0.5,
				// One detection per image: d1 (hit) and d2 (miss).
				"AR1": 1.0 / 3, "AR10": (5*1 + 5*2.0/3) / 10, "AR100": (5*1 + 5*2.0/3) / 10,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := COCO(makeDataset(tc.cats, tc.images), tc.dets)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{
				"AP": m.AP, "AP50": m.AP50, "AP75": m.AP75, "APSmall": m.APSmall, "APMedium": m.APMedium, "APLarge": m.APLarge,
				"AR1": m.AR1, "AR10": m.AR10, "AR100": m.AR100, "ARSmall": m.ARSmall, "ARMedium": m.ARMedium, "ARLarge": m.ARLarge,
			}
			for k, want := range tc.want {
				check(t, k, got[k], want)
			}
		})
	}
}

func TestCOCOPerClass(t *testing.T) {
	cats := []dataset.Category{{ID: 90, Name: "late"}, {ID: 2, Name: "early"}, {ID: 40, Name: "absent"}}
	ds := makeDataset(cats, map[int64][]gt{
		5: {{0, [4]float64{10, 10, 50, 50}, false, 0}, {1, [4]float64{100, 100, 50, 50}, false, 0}},
		9: {{1, [4]float64{10, 10, 50, 50}, false, 0}, {1, [4]float64{300, 300, 40, 40}, true, 0}},
	})
	dets := []Detection{
		det(5, 90, 10, 10, 50, 50, 0.9),
		det(5, 2, 100, 100, 50, 50, 0.8),
		det(9, 40, 10, 10, 50, 50, 0.7), // a class with no ground truth
	}
	m, err := COCO(ds, dets)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PerClass) != 3 {
		t.Fatalf("per class has %d entries, want 3", len(m.PerClass))
	}
	// Dataset order is kept; "early" found one of its two objects.
	want := []struct {
		id       int64
		ap       float64
		gt, dets int
	}{{90, 1, 1, 1}, {2, 51.0 / 101, 2, 1}, {40, -1, 0, 1}}
	for k, w := range want {
		c := m.PerClass[k]
		if c.ID != w.id || c.GroundTruth != w.gt || c.Detections != w.dets {
			t.Errorf("class %d: id %d gt %d dets %d, want %d %d %d", k, c.ID, c.GroundTruth, c.Detections, w.id, w.gt, w.dets)
		}
		check(t, c.Name+" AP", c.AP, w.ap)
		check(t, c.Name+" AP50", c.AP50, w.ap)
	}
	// The summary AP averages the classes that have ground truth.
	check(t, "AP", m.AP, (1+51.0/101)/2)
	if m.GroundTruth != 3 || m.Crowd != 1 || m.Detections != 3 || m.Images != 2 {
		t.Errorf("counts gt %d crowd %d dets %d images %d, want 3 1 3 2", m.GroundTruth, m.Crowd, m.Detections, m.Images)
	}
	if len(m.Precision50) != 101 || len(m.PerClass[0].Precision50) != 101 || len(m.RecallThresholds) != 101 {
		t.Fatalf("curves have %d/%d/%d points, want 101", len(m.Precision50), len(m.PerClass[0].Precision50), len(m.RecallThresholds))
	}
	if m.PerClass[2].Precision50[0] != -1 {
		t.Errorf("precision of a class without ground truth = %v, want -1", m.PerClass[2].Precision50[0])
	}
	check(t, "mean precision at recall 0.5", m.Precision50[50], 1)
	check(t, "mean precision at recall 0.51", m.Precision50[51], 0.5)
}

func TestCOCORejectsForeignDetections(t *testing.T) {
	ds := makeDataset(oneClass, map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}}})
	tests := []struct {
		name string
		det  Detection
		want error
	}{
		{"image not in the split", det(2, 1, 0, 0, 1, 1, 0.5), ErrUnknownImage},
		{"0-based class instead of category id", det(1, 0, 0, 0, 1, 1, 0.5), ErrUnknownCategory},
		{"nan score", det(1, 1, 0, 0, 1, 1, math.NaN()), ErrBadDetection},
		{"infinite box", det(1, 1, 0, 0, math.Inf(1), 1, 0.5), ErrBadDetection},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := COCO(ds, []Detection{tc.det})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestCOCOMatchesReference compares with golden numbers from a numpy
// transcription of pycocotools (see testdata/README.md) on random cases
// with crowd boxes, tied scores and mislabelled detections.
func TestCOCOMatchesReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "cocoeval_random.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Categories []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"categories"`
		Images []struct {
			ID  int64 `json:"id"`
			GTs []struct {
				BBox       [4]float64 `json:"bbox"`
				Area       float64    `json:"area"`
				IsCrowd    int        `json:"iscrowd"`
				CategoryID int64      `json:"category_id"`
			} `json:"gts"`
		} `json:"images"`
		Dets       []Detection `json:"dets"`
		Stats      []float64   `json:"stats"`
		PerClassAP []float64   `json:"per_class_ap"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d reference cases", len(cases))
	}
	for n, c := range cases {
		ds := &dataset.Dataset{Name: "ref"}
		for _, cat := range c.Categories {
			ds.Categories = append(ds.Categories, dataset.Category{ID: cat.ID, Name: cat.Name})
		}
		for _, im := range c.Images {
			img := dataset.Image{ID: im.ID, Width: 400, Height: 400}
			for _, g := range im.GTs {
				class, ok := ds.CategoryIndex(g.CategoryID)
				if !ok {
					t.Fatalf("case %d: category %d not listed", n, g.CategoryID)
				}
				img.Objects = append(img.Objects, dataset.Object{
					Box:   dataset.Box{X1: g.BBox[0], Y1: g.BBox[1], X2: g.BBox[0] + g.BBox[2], Y2: g.BBox[1] + g.BBox[3]},
					Class: class, Crowd: g.IsCrowd == 1, Area: g.Area,
				})
			}
			ds.Images = append(ds.Images, img)
		}
		m, err := COCO(ds, c.Dets)
		if err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
		got := []float64{m.AP, m.AP50, m.AP75, m.APSmall, m.APMedium, m.APLarge, m.AR1, m.AR10, m.AR100, m.ARSmall, m.ARMedium, m.ARLarge}
		names := []string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
		for i := range got {
			if math.Abs(got[i]-c.Stats[i]) > 1e-12 {
				t.Errorf("case %d: %s = %.15f, reference %.15f", n, names[i], got[i], c.Stats[i])
			}
		}
		// The reference lists classes by ascending id.
		byID := map[int64]float64{}
		for _, pc := range m.PerClass {
			byID[pc.ID] = pc.AP
		}
		ids := make([]int64, 0, len(c.Categories))
		for _, cat := range c.Categories {
			ids = append(ids, cat.ID)
		}
		sortInt64s(ids)
		for k, id := range ids {
			if math.Abs(byID[id]-c.PerClassAP[k]) > 1e-12 {
				t.Errorf("case %d: class %d AP = %.15f, reference %.15f", n, id, byID[id], c.PerClassAP[k])
			}
		}
	}
}

func sortInt64s(a []int64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
