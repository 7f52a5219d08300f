package evaluate

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
)

func TestReadResults(t *testing.T) {
	dets, err := ReadResults(filepath.Join("testdata", "results_good.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Detection{
		{ImageID: 42, CategoryID: 18, BBox: [4]float64{258.15, 41.29, 348.26, 243.78}, Score: 0.236},
		{ImageID: 73, CategoryID: 11, BBox: [4]float64{61, 22.75, 504, 609.67}, Score: 0.318},
		{ImageID: 73, CategoryID: 4, BBox: [4]float64{12.66, 3.32, 268.6, 271.91}, Score: 0.726},
	}
	if !reflect.DeepEqual(dets, want) {
		t.Fatalf("read %+v\nwant %+v", dets, want)
	}
	empty, err := ReadResults(filepath.Join("testdata", "results_empty.json"))
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty results: %v, %d detections", err, len(empty))
	}
}

func TestReadResultsErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"results_bad_bbox.json", "[0]: bbox has 3 numbers, want 4"},
		{"results_missing_category.json", "[0]: missing field"},
		{"results_not_array.json", "want a JSON array"},
		{"results_fractional_id.json", "image_id: 1.5 is not a whole number"},
		{"results_truncated.json", "malformed json"},
		{"no_such_file.json", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := ReadResults(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "evaluate: ") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, tc.file) {
				t.Fatalf("error %q, want it to start with \"evaluate: \", name %s and say %q", msg, tc.file, tc.want)
			}
		})
	}
}

func TestWriteResultsRoundTrip(t *testing.T) {
	dets := []Detection{
		FromBox(7, 3, dataset.Box{X1: 1.5, Y1: 2, X2: 11.5, Y2: 22}, 0.875),
		{ImageID: 9, CategoryID: 90, BBox: [4]float64{0, 0, 640, 480}, Score: 1e-7},
	}
	if dets[0].BBox != [4]float64{1.5, 2, 10, 20} || dets[0].Box() != (dataset.Box{X1: 1.5, Y1: 2, X2: 11.5, Y2: 22}) {
		t.Fatalf("FromBox/Box round trip: %+v", dets[0])
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "results.json")
	if err := WriteResults(path, dets); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, dets) {
		t.Fatalf("round trip %+v, want %+v", back, dets)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("write left %d files, want only results.json", len(entries))
	}
	blocked := filepath.Join(path, "r.json") // below a file: no folder can be made there
	if err := WriteResults(blocked, dets); err == nil || !strings.Contains(err.Error(), blocked) {
		t.Fatalf("writing below a file: got %v, want an error naming %s", err, blocked)
	}
}

func TestPlotPR(t *testing.T) {
	ds := makeDataset([]dataset.Category{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}, map[int64][]gt{
		1: {{0, [4]float64{10, 10, 50, 50}, false, 0}, {1, [4]float64{100, 100, 50, 50}, false, 0}},
	})
	m, err := COCO(ds, []Detection{det(1, 1, 10, 10, 50, 50, 0.9), det(1, 2, 100, 100, 40, 50, 0.8)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pr.png")
	if err := PlotPR(path, m, "test"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("plot is not a png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Fatalf("plot is %v, want a readable size", b)
	}
	if err := PlotPR(filepath.Join(t.TempDir(), "pr.gif"), m, ""); err == nil || !strings.Contains(err.Error(), ".png") {
		t.Fatalf("unsupported extension: error %v", err)
	}
	// Metrics read back from JSON have no curves: an error, not a panic.
	if err := PlotPR(filepath.Join(t.TempDir(), "pr.png"), &Metrics{AP: 0.5}, ""); err == nil || !strings.Contains(err.Error(), "no precision curves") {
		t.Fatalf("metrics without curves: error %v", err)
	}
}

func TestWriteSummary(t *testing.T) {
	ds := makeDataset(oneClass, map[int64][]gt{1: {{0, [4]float64{10, 10, 50, 50}, false, 0}}})
	m, err := COCO(ds, []Detection{det(1, 1, 10, 10, 50, 50, 0.9)})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := m.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000",
		" Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000",
		"thing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func FuzzParseResults(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "results_*.json"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dets, err := parseResults(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a write and read unchanged.
		path := filepath.Join(t.TempDir(), "r.json")
		if err := WriteResults(path, dets); err != nil {
			t.Fatalf("parsed detections do not write: %v", err)
		}
		back, err := ReadResults(path)
		if err != nil {
			t.Fatalf("written detections do not read: %v", err)
		}
		if len(back) != len(dets) {
			t.Fatalf("round trip has %d detections, want %d", len(back), len(dets))
		}
	})
}
