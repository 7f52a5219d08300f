package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
)

func generate(t *testing.T, dir string, opts Options) *Summary {
	t.Helper()
	s, err := Generate(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tree reads every file under dir, keyed by relative path.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "synth")
	s := generate(t, dir, Options{Images: 20, Size: 96, Seed: 7, ValFrac: 0.2, TestFrac: 0.1})
	if s.Train != 14 || s.Val != 4 || s.Test != 2 || s.Images != 20 {
		t.Fatalf("splits train %d val %d test %d of %d, want 14 4 2 of 20", s.Train, s.Val, s.Test, s.Images)
	}
	total, ids := 0, map[int64]string{}
	for _, split := range []string{"train", "val", "test"} {
		ds, err := dataset.Load(dir, split)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Format != dataset.FormatCOCO || !reflect.DeepEqual(ds.ClassNames(), Classes) {
			t.Fatalf("%s: format %s classes %v", split, ds.Format, ds.ClassNames())
		}
		// The generator writes boxes inside the image, so nothing is repaired.
		if len(ds.Report.Repairs) != 0 {
			t.Errorf("%s: loading repaired boxes:\n%s", split, ds.Report)
		}
		for _, im := range ds.Images {
			if prev, dup := ids[im.ID]; dup {
				t.Fatalf("image %d is in %s and %s", im.ID, prev, split)
			}
			ids[im.ID] = split
			if im.Width != 96 || im.Height != 96 {
				t.Fatalf("image %d is %dx%d", im.ID, im.Width, im.Height)
			}
			if _, err := dataset.DecodeFile(im.Path); err != nil {
				t.Fatal(err)
			}
			for _, o := range im.Objects {
				total++
				if o.Area <= 0 || o.Area > o.Box.Area()+1 {
					t.Errorf("image %d: area %.1f for box %+v", im.ID, o.Area, o.Box)
				}
			}
		}
	}
	if total != s.Objects || len(ids) != 20 {
		t.Fatalf("loaded %d objects in %d images, summary says %d", total, len(ids), s.Objects)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	base := t.TempDir()
	a := filepath.Join(base, "a")
	b := filepath.Join(base, "b")
	c := filepath.Join(base, "c")
	generate(t, a, Options{Images: 6, Size: 64, Seed: 3, TestFrac: 0.5, Workers: 1})
	generate(t, b, Options{Images: 6, Size: 64, Seed: 3, TestFrac: 0.5, Workers: 4})
	generate(t, c, Options{Images: 6, Size: 64, Seed: 4, TestFrac: 0.5})
	ta, tb, tc := tree(t, a), tree(t, b), tree(t, c)
	if !reflect.DeepEqual(ta, tb) {
		t.Fatal("the same seed with another worker count wrote different files")
	}
	if ta["images/000001.jpg"] == tc["images/000001.jpg"] {
		t.Fatal("seeds 3 and 4 drew the same first image")
	}
	if _, ok := ta["synth.json"]; !ok {
		t.Fatal("no synth.json")
	}
}

func TestScenesCoverTheBrief(t *testing.T) {
	const size = 320
	perClass := make([]int, len(Classes))
	minSide, maxSide := 1e9, 0.0
	small := 0
	for i := range 60 {
		s, err := Render(PresetBenchmark, 11, i, size, 1, 8)
		if err != nil {
			t.Fatal(err)
		}
		if s.Quality < 75 || s.Quality > 95 {
			t.Fatalf("jpeg quality %d", s.Quality)
		}
		for _, o := range s.Objects {
			perClass[o.Class]++
			b := o.Box
			if b.X1 < 0 || b.Y1 < 0 || b.X2 > size || b.Y2 > size {
				t.Fatalf("box %+v outside the image", b)
			}
			// Compare unclipped sizes: boxes at the border are cut.
			if b.X1 > 0 && b.Y1 > 0 && b.X2 < size && b.Y2 < size {
				side := max(b.Width(), b.Height())
				minSide, maxSide = min(minSide, side), max(maxSide, side)
				if side < 16 {
					small++
				}
			}
		}
	}
	for k, n := range perClass {
		if n < 10 {
			t.Errorf("class %s drawn %d times in 60 images", Classes[k], n)
		}
	}
	if minSide > 10 || maxSide < size/3 || small < 10 {
		t.Errorf("object sides span %.1f..%.1f px with %d under 16 px; want ~8 px to half the image, many small", minSide, maxSide, small)
	}
}

func TestGenerateRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(context.Background(), dir, Options{Images: 2, Size: 64})
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("error %v, want ErrNotEmpty", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("the refused folder was changed")
	}
	// A previous synthetic set is replaced whole, and --force replaces anything.
	out := filepath.Join(t.TempDir(), "set")
	generate(t, out, Options{Images: 3, Size: 64, Seed: 1})
	generate(t, out, Options{Images: 2, Size: 64, Seed: 2})
	if n := len(tree(t, filepath.Join(out, "images"))); n != 2 {
		t.Fatalf("regenerated set has %d images, want 2", n)
	}
	generate(t, dir, Options{Images: 2, Size: 64, Force: true})
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); !os.IsNotExist(err) {
		t.Fatal("force did not replace the folder")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".set.*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary folders left behind: %v", leftovers)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{Images: 0},
		{Images: 2, Size: 8},
		{Images: 2, ValFrac: 0.6, TestFrac: 0.6},
		{Images: 2, MinObjects: 5, MaxObjects: 2},
	} {
		if _, err := Generate(context.Background(), t.TempDir(), o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func BenchmarkRender320(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Render(PresetBenchmark, 1, i, 320, 1, 8); err != nil {
			b.Fatal(err)
		}
	}
}

// treeDigest is one SHA-256 over the sorted relative paths and contents of
// every file under dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	files := tree(t, dir)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s %x\n", n, sha256.Sum256([]byte(files[n])))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestBenchmarkSetGolden pins the bytes of the default (benchmark) set:
// `gidedge data synth` with its defaults and the call of
// scripts/bench_distill.sh (160 px, val/test 0.15). Every benchmark figure
// in benchmarks/RESULTS.md was measured on sets made this way, so a change
// to the generator must leave them alone (add a preset instead). The
// digests were taken before the demo preset existed.
func TestBenchmarkSetGolden(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Images: 4, Seed: 1, ValFrac: 0.1, TestFrac: 0.1}, "056cc92420d824bd0cab08df1b20cae3a453ec7e01d12872b870957d59243ef8"},
		{Options{Images: 6, Size: 160, Seed: 1, ValFrac: 0.15, TestFrac: 0.15}, "42713fd66f4ce8c648b924b0df6ef98e64a912d27f18212c84c31de54eb498b7"},
	} {
		dir := filepath.Join(t.TempDir(), "set")
		generate(t, dir, c.opts)
		if got := treeDigest(t, dir); got != c.want {
			t.Errorf("options %+v: set digest %s, want %s (the benchmark set changed)", c.opts, got, c.want)
		}
	}
}

// TestDemoPreset checks what the demo preset promises: its three classes
// (indexed from 0 in the set), objects inside the image, an eighth to two
// fifths of its side, never overlapping, and the preset named in synth.json
// and the categories.
func TestDemoPreset(t *testing.T) {
	const size = 160
	names, err := PresetDemo.Classes()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ring", "star", "triangle"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("demo classes %v, want %v", names, want)
	}
	perClass := make([]int, len(names))
	for i := range 40 {
		s, err := Render(PresetDemo, 5, i, size, 2, 6)
		if err != nil {
			t.Fatal(err)
		}
		if s.Quality < 90 || len(s.Objects) == 0 || len(s.Objects) > 6 {
			t.Fatalf("image %d: jpeg quality %d, %d objects", i, s.Quality, len(s.Objects))
		}
		for j, o := range s.Objects {
			perClass[o.Class]++
			b := o.Box
			if b.X1 < 0 || b.Y1 < 0 || b.X2 > size || b.Y2 > size {
				t.Fatalf("image %d: box %+v leaves the image", i, b)
			}
			// A triangle's box is at least √3/2 of the side it was drawn at.
			if side := max(b.Width(), b.Height()); side < 0.86*size/8 || side > 0.4*size+1 {
				t.Fatalf("image %d: object side %.1f, want %d..%d", i, side, size/8, 2*size/5)
			}
			for _, p := range s.Objects[:j] {
				if intersection(b, p.Box) > 0 {
					t.Fatalf("image %d: objects %+v and %+v overlap", i, b, p.Box)
				}
			}
		}
	}
	for k, n := range perClass {
		if n < 10 {
			t.Errorf("class %s drawn %d times in 40 images", names[k], n)
		}
	}

	dir := filepath.Join(t.TempDir(), "demo")
	sum := generate(t, dir, Options{Images: 6, Size: 96, Seed: 2, TestFrac: 0.5, Preset: PresetDemo})
	if !reflect.DeepEqual(sum.Classes, names) || len(sum.ClassCounts()) != 3 {
		t.Fatalf("summary classes %v counts %v", sum.Classes, sum.ClassCounts())
	}
	ds, err := dataset.Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ds.ClassNames(), names) {
		t.Fatalf("categories %v, want %v", ds.ClassNames(), names)
	}
	files := tree(t, dir)
	if !strings.Contains(files["synth.json"], `"preset": "demo"`) {
		t.Fatalf("synth.json does not name the preset:\n%s", files["synth.json"])
	}
	if _, err := Generate(context.Background(), t.TempDir(), Options{Images: 2, Preset: "hard"}); err == nil || !strings.Contains(err.Error(), `preset "hard"`) {
		t.Fatalf("unknown preset: error %v", err)
	}
}
