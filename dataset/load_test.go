package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

func fixture(name string) string { return filepath.Join("testdata", name) }

func TestLoadVOCQuirks(t *testing.T) {
	ds, err := Load(fixture("voc_quirks"), "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != FormatVOC || ds.Split != "train" || ds.Name != "voc_quirks" {
		t.Errorf("format %q split %q name %q", ds.Format, ds.Split, ds.Name)
	}
	if got := ds.ClassNames(); !reflect.DeepEqual(got, []string{"cat", "dog"}) {
		t.Fatalf("classes %v, want [cat dog] (sorted names from every annotation file)", got)
	}
	if len(ds.Images) != 2 {
		t.Fatalf("%d images, want 2", len(ds.Images))
	}
	a := ds.Images[0]
	want := []Object{
		// VOC 1-based inclusive (3,4)-(12,14) is [2,12)x[3,14).
		{Box: Box{2, 3, 12, 14}, Class: 0, Area: 110},
		{Box: Box{19, 9, 32, 24}, Class: 1, Area: 13 * 15},
		{Box: Box{0, 0, 8, 8}, Class: 1, Crowd: true, Area: 64},
	}
	if !reflect.DeepEqual(a.Objects, want) {
		t.Fatalf("a.xml objects\n%+v\nwant\n%+v", a.Objects, want)
	}
	if a.Width != 32 || a.Height != 24 || filepath.Base(a.Path) != "a.jpg" {
		t.Errorf("a: %dx%d %s", a.Width, a.Height, a.Path)
	}
	if len(ds.Images[1].Objects) != 2 {
		t.Errorf("b.xml kept %d objects, want 2", len(ds.Images[1].Objects))
	}

	r := ds.Report
	counts := map[RepairKind]int{RepairClipped: 1, RepairOutside: 1, RepairZeroArea: 2, RepairDuplicate: 1, RepairNearDuplicate: 1}
	for kind, n := range counts {
		if got := r.Count(kind); got != n {
			t.Errorf("report counts %d %s, want %d", got, kind, n)
		}
	}
	if r.Dropped() != 4 || r.Objects != 5 || r.Crowd != 1 || r.Images != 2 {
		t.Errorf("report dropped %d objects %d crowd %d images %d, want 4 5 1 2", r.Dropped(), r.Objects, r.Crowd, r.Images)
	}
	lines := r.String()
	for _, want := range []string{
		"dropped 2 boxes with zero area in 2 files: a.xml, b.xml",
		"clipped 1 box that crossed the image border in 1 file: a.xml",
		"dropped 1 box entirely outside the image in 1 file: b.xml",
		"dropped 1 duplicate box (same class and coordinates as another) in 1 file: a.xml",
		"kept 1 near-duplicate box",
		"2 images, 5 objects (1 crowd/difficult)",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("report lacks %q:\n%s", want, lines)
		}
	}
}

func TestWriteReport(t *testing.T) {
	ds, err := Load(fixture("voc_quirks"), "train")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := ds.WriteReport(&b, "> "); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if want := `> dataset voc_quirks (voc, split "train"): 2 images, 5 objects (1 crowd/difficult)`; lines[0] != want {
		t.Fatalf("first line %q, want %q", lines[0], want)
	}
	if len(lines) != len(ds.Report.Lines()) {
		t.Fatalf("%d lines, want one per report line (%d):\n%s", len(lines), len(ds.Report.Lines()), b.String())
	}
	for i, l := range ds.Report.Lines()[1:] {
		if lines[i+1] != ">   "+l {
			t.Errorf("line %d is %q, want %q", i+1, lines[i+1], ">   "+l)
		}
	}
}

func TestLoadVOCSizeFromImage(t *testing.T) {
	ds, err := Load(fixture("voc_quirks"), "test")
	if err != nil {
		t.Fatal(err)
	}
	// c.xml has neither <size> nor <filename>: c.png is found by stem.
	c := ds.Images[0]
	if len(ds.Images) != 1 || c.Width != 20 || c.Height != 10 || filepath.Base(c.Path) != "c.png" || len(c.Objects) != 0 {
		t.Fatalf("c: %+v", c)
	}
	// Stems carry no digits, so ids are positions among a, b, c.
	if c.ID != 3 {
		t.Errorf("c has id %d, want 3", c.ID)
	}
	all, err := Load(fixture("voc_quirks"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Images) != 3 {
		t.Errorf("empty split loaded %d images, want every annotation file (3)", len(all.Images))
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, dir, split string
		opts             LoadOptions
		is               error
		says             []string
	}{
		{"unknown class lists the known ones", "voc_unknown_class", "", LoadOptions{}, ErrUnknownClass,
			[]string{"a.xml", `object 2 has class "bird"`, `known classes are "cat", "dog"`}},
		{"class list from options", "voc_quirks", "train", LoadOptions{Classes: []string{"cat"}}, ErrUnknownClass,
			[]string{`class "dog"`, `known classes are "cat"`}},
		{"missing image", "voc_missing_image", "", LoadOptions{}, ErrMissingImage,
			[]string{"gone.xml", "gone.jpg"}},
		{"bad number names the field", "voc_bad_number", "", LoadOptions{}, nil,
			[]string{"a.xml", "object 2 (cat): bndbox/xmax is \"1O\", want a finite number"}},
		{"missing split lists the others", "voc_quirks", "val", LoadOptions{}, ErrNoSplit,
			[]string{"val.txt", "splits are test, train"}},
		{"unknown coco category lists the known ones", "coco_unknown_category", "", LoadOptions{}, ErrUnknownClass,
			[]string{"instances.json", "annotations[0] (id 5) has category_id 99", `"1 person", "3 car"`}},
		{"coco missing image", "coco_missing_image", "test", LoadOptions{}, ErrMissingImage,
			[]string{"instances_test.json", `"nowhere.jpg"`}},
		{"coco missing split", "coco_missing_image", "train", LoadOptions{}, ErrNoSplit,
			[]string{"has no instances_train.json nor instances.json", "splits are test"}},
		{"coco classes differ from a checkpoint's", "coco_quirks", "", LoadOptions{Classes: []string{"car", "bus"}}, ErrUnknownClass,
			[]string{"has categories car, bus, zebra, want car, bus"}},
		{"not a dataset", "", "", LoadOptions{}, ErrFormat, []string{"neither"}},
		{"missing image path said once", "voc_missing_image", "", LoadOptions{}, ErrMissingImage,
			[]string{"image not found at " + filepath.Join(fixture("voc_missing_image"), "JPEGImages", "gone.jpg") + " (nor gone"}},
		{"coco file_name climbing out", "coco_escape", "", LoadOptions{}, ErrOutsideRoot,
			[]string{"instances.json", "images[1] (id 7)", `file_name "../../../../../../../../etc/passwd" leads outside`}},
		{"coco absolute file_name elsewhere", "coco_escape_abs", "", LoadOptions{}, ErrOutsideRoot,
			[]string{"instances.json", "images[0] (id 3)", `file_name "/etc/passwd" is not inside`}},
		{"voc filename climbing out", "voc_escape", "", LoadOptions{}, ErrOutsideRoot,
			[]string{"a.xml", `<filename> "../../../../../../../../etc/passwd" leads outside`}},
		{"coco bbox of strings names the annotation", "coco_bbox_strings", "", LoadOptions{}, nil,
			[]string{"instances.json", "annotations[3] (id 4): field bbox holds a string, want a number"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadWith(fixture(tc.dir), tc.split, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "dataset: ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
		})
	}
}

func TestLoadCOCOQuirks(t *testing.T) {
	ds, err := Load(fixture("coco_quirks"), "")
	if err != nil {
		t.Fatal(err)
	}
	// Class indices follow ascending category ids, original ids kept.
	wantCats := []Category{{3, "car"}, {7, "bus"}, {12, "zebra"}}
	if !reflect.DeepEqual(ds.Categories, wantCats) {
		t.Fatalf("categories %v, want %v", ds.Categories, wantCats)
	}
	if k, ok := ds.CategoryIndex(12); !ok || k != 2 {
		t.Errorf("CategoryIndex(12) = %d %v, want 2", k, ok)
	}
	if len(ds.Images) != 3 {
		t.Fatalf("%d images, want 3 (one without annotations)", len(ds.Images))
	}
	im := ds.Images[0]
	want := []Object{
		{Box: Box{2, 3, 12, 11}, Class: 0, Area: 50.5},
		{Box: Box{30, 20, 40, 30}, Class: 2, Area: 100},
	}
	if im.ID != 10 || !reflect.DeepEqual(im.Objects, want) {
		t.Fatalf("image 10: id %d objects %+v, want %+v", im.ID, im.Objects, want)
	}
	im2 := ds.Images[1]
	if im2.Width != 40 || im2.Height != 30 {
		t.Errorf("image 20 size %dx%d, want 40x30 from the file", im2.Width, im2.Height)
	}
	if len(im2.Objects) != 2 || !im2.Objects[0].Crowd || !im2.Objects[1].Crowd || im2.Objects[0].Area != 900 {
		t.Errorf("image 20 objects %+v, want two crowd objects (iscrowd 1 and true)", im2.Objects)
	}
	if filepath.Base(filepath.Dir(im2.Path)) != "sub" {
		t.Errorf("image 20 path %s, want images/sub/2.jpg", im2.Path)
	}
	r := ds.Report
	for kind, n := range map[RepairKind]int{RepairClipped: 1, RepairOutside: 1, RepairZeroArea: 1, RepairDuplicate: 1} {
		if r.Count(kind) != n {
			t.Errorf("%s: %d, want %d", kind, r.Count(kind), n)
		}
	}
	if !strings.Contains(r.String(), "dropped 1 box entirely outside the image in 1 image: 2.jpg") {
		t.Errorf("report:\n%s", r)
	}
	if got := ds.ClassCounts(); !reflect.DeepEqual(got, []int{1, 0, 1}) {
		t.Errorf("class counts %v, want [1 0 1] (crowd not counted)", got)
	}

	val, err := Load(fixture("coco_quirks"), "val")
	if err != nil {
		t.Fatal(err)
	}
	if len(val.Images) != 1 || filepath.Base(filepath.Dir(val.Images[0].Path)) != "val" || val.Images[0].Objects[0].Class != 1 {
		t.Errorf("val split: %+v", val.Images)
	}
	fallback, err := Load(fixture("coco_quirks"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(fallback.Images) != 3 || !strings.Contains(fallback.Report.String(), "no instances_test.json, read instances.json") {
		t.Errorf("fallback to instances.json: %d images, report %s", len(fallback.Images), fallback.Report)
	}
}

func TestWriteCOCORoundTrip(t *testing.T) {
	src, err := Load(fixture("coco_quirks"), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Point the root at the fixture so file names stay relative to its images/.
	if err := WriteCOCO(filepath.Join(dir, "annotations", "instances.json"), src); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(mustAbs(t, filepath.Join(fixture("coco_quirks"), "images")), filepath.Join(dir, "images")); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Categories, src.Categories) || len(back.Images) != len(src.Images) {
		t.Fatalf("round trip changed categories or images: %v / %d", back.Categories, len(back.Images))
	}
	for i := range src.Images {
		if !reflect.DeepEqual(back.Images[i].Objects, src.Images[i].Objects) || back.Images[i].ID != src.Images[i].ID {
			t.Errorf("image %d: %+v, want %+v", i, back.Images[i], src.Images[i])
		}
	}
	if len(back.Report.Repairs) != 0 {
		t.Errorf("reloading a written set repaired something: %s", back.Report)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadBCCD(t *testing.T) {
	dir := sharedtest.Dir(t, "data", "bccd")
	ds, err := Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.ClassNames(); !reflect.DeepEqual(got, []string{"Platelets", "RBC", "WBC"}) {
		t.Fatalf("classes %v", got)
	}
	if len(ds.Images) != 72 {
		t.Fatalf("test split has %d images, want 72", len(ds.Images))
	}
	// BloodImage_00007 is the first test image; ids are the stem digits.
	if ds.Images[0].ID != 7 || ds.Images[0].Width != 640 || ds.Images[0].Height != 480 {
		t.Errorf("first test image id %d size %dx%d", ds.Images[0].ID, ds.Images[0].Width, ds.Images[0].Height)
	}
	all, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// 4,888 annotated boxes, two of them single-pixel clicks (00338, 00343).
	r := all.Report
	if len(all.Images) != 364 || r.Objects != 4886 || r.Count(RepairZeroArea) != 2 {
		t.Errorf("bccd: %d images, %d objects, %d zero-area, want 364 4886 2\n%s", len(all.Images), r.Objects, r.Count(RepairZeroArea), r)
	}
	if !strings.Contains(r.String(), "BloodImage_00338.xml, BloodImage_00343.xml") {
		t.Errorf("zero-area line does not name the files:\n%s", r)
	}
	if r.Count(RepairNearDuplicate) == 0 {
		t.Errorf("the near-duplicate BCCD boxes were not reported:\n%s", r)
	}
	for _, im := range all.Images {
		for _, o := range im.Objects {
			if o.Box.X1 < 0 || o.Box.Y1 < 0 || o.Box.X2 > 640 || o.Box.Y2 > 480 || o.Box.Area() <= 0 {
				t.Fatalf("image %d has box %+v outside 640x480", im.ID, o.Box)
			}
		}
	}
}

func TestLoadCOCO128(t *testing.T) {
	ds, err := Load(sharedtest.Dir(t, "data", "coco128"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Images) != 128 || len(ds.Categories) != 80 {
		t.Fatalf("%d images, %d categories, want 128 and 80", len(ds.Images), len(ds.Categories))
	}
	// COCO skips id 12: class 11 is "stop sign" with id 13.
	if c := ds.Categories[11]; c.ID != 13 || c.Name != "stop sign" {
		t.Errorf("class 11 is %+v, want id 13 stop sign", c)
	}
	if ds.Report.Crowd != 10 || ds.Report.Objects+ds.Report.Dropped() != 939 {
		t.Errorf("crowd %d, objects %d + dropped %d, want 10 crowd and 939 in all\n%s", ds.Report.Crowd, ds.Report.Objects, ds.Report.Dropped(), ds.Report)
	}
}
