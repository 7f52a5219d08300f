package dataset

import (
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s", pattern)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseVOC(f *testing.F) {
	addSeeds(f, filepath.Join("testdata", "*", "Annotations", "*.xml"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseVOC(data)
		if err != nil {
			return
		}
		if v.Width < 0 || v.Height < 0 {
			t.Fatalf("negative size %dx%d accepted", v.Width, v.Height)
		}
		for _, o := range v.Objects {
			if o.Name == "" {
				t.Fatal("object without a name accepted")
			}
			// Whatever parses must go through the repairs without panicking
			// and come out inside the image or dropped.
			objs := finishObject(nil, Object{Box: o.Box}, max(v.Width, 1), max(v.Height, 1), "f.xml", newReportBuilder("file"))
			for _, k := range objs {
				if k.Box.Area() <= 0 || k.Box.X1 < 0 || k.Box.X2 > float64(max(v.Width, 1)) {
					t.Fatalf("kept box %+v in a %dx%d image", k.Box, v.Width, v.Height)
				}
			}
		}
	})
}

func FuzzParseCOCO(f *testing.F) {
	addSeeds(f, filepath.Join("testdata", "*", "annotations", "*.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCOCO(data)
		if err != nil {
			return
		}
		images := map[int64]bool{}
		for _, im := range c.Images {
			images[im.ID] = true
		}
		for _, a := range c.Annotations {
			if len(a.BBox) != 4 || !images[a.ImageID] {
				t.Fatalf("annotation %+v accepted", a)
			}
		}
	})
}
