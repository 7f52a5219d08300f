package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// cocoFile is the part of a COCO instances JSON that Load uses.
type cocoFile struct {
	Info        *cocoInfo        `json:"info,omitempty"`
	Images      []cocoImage      `json:"images"`
	Annotations []cocoAnnotation `json:"annotations"`
	Categories  []cocoCategory   `json:"categories"`
}

type cocoInfo struct {
	Description string `json:"description,omitempty"`
	Version     string `json:"version,omitempty"`
}

type cocoImage struct {
	ID       int64  `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type cocoAnnotation struct {
	ID         int64     `json:"id"`
	ImageID    int64     `json:"image_id"`
	CategoryID int64     `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Area       *float64  `json:"area,omitempty"`
	IsCrowd    crowdFlag `json:"iscrowd"`
}

type cocoCategory struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory,omitempty"`
}

// crowdFlag accepts COCO's 0/1 and JSON booleans.
type crowdFlag bool

func (c *crowdFlag) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "0", "false", "null":
		*c = false
	case "1", "true":
		*c = true
	default:
		return fmt.Errorf("iscrowd is %s, want 0 or 1", b)
	}
	return nil
}

func (c crowdFlag) MarshalJSON() ([]byte, error) {
	if c {
		return []byte("1"), nil
	}
	return []byte("0"), nil
}

// parseCOCO decodes and checks the structure of an instances JSON: unique
// image and category ids, four finite bbox numbers, references that exist.
func parseCOCO(data []byte) (*cocoFile, error) {
	var f cocoFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, locateCOCOError(data, err)
	}
	images := make(map[int64]bool, len(f.Images))
	for i, im := range f.Images {
		if images[im.ID] {
			return nil, fmt.Errorf("images[%d]: id %d is used twice", i, im.ID)
		}
		images[im.ID] = true
		if im.FileName == "" {
			return nil, fmt.Errorf("images[%d] (id %d): empty file_name", i, im.ID)
		}
		if im.Width < 0 || im.Height < 0 || im.Width > 1<<20 || im.Height > 1<<20 {
			return nil, fmt.Errorf("images[%d] (id %d): size %dx%d, want positive width and height", i, im.ID, im.Width, im.Height)
		}
	}
	cats := make(map[int64]bool, len(f.Categories))
	names := make(map[string]int64, len(f.Categories))
	for i, c := range f.Categories {
		if cats[c.ID] {
			return nil, fmt.Errorf("categories[%d]: id %d is used twice", i, c.ID)
		}
		cats[c.ID] = true
		if c.Name == "" {
			return nil, fmt.Errorf("categories[%d] (id %d): empty name", i, c.ID)
		}
		if other, dup := names[c.Name]; dup {
			return nil, fmt.Errorf("categories %d and %d are both named %q", other, c.ID, c.Name)
		}
		names[c.Name] = c.ID
	}
	for i, a := range f.Annotations {
		if len(a.BBox) != 4 {
			return nil, fmt.Errorf("annotations[%d] (id %d): bbox has %d numbers, want 4 (x, y, width, height)", i, a.ID, len(a.BBox))
		}
		for _, v := range a.BBox {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("annotations[%d] (id %d): bbox %v is not finite", i, a.ID, a.BBox)
			}
		}
		if !images[a.ImageID] {
			return nil, fmt.Errorf("annotations[%d] (id %d): image_id %d is not in images", i, a.ID, a.ImageID)
		}
		if a.Area != nil && (math.IsNaN(*a.Area) || math.IsInf(*a.Area, 0)) {
			return nil, fmt.Errorf("annotations[%d] (id %d): area %v is not finite", i, a.ID, *a.Area)
		}
	}
	return &f, nil
}

// locateCOCOError turns a failed decode of the whole file into an error
// naming the entry at fault (annotations[3] (id 4): field bbox holds a
// string, want a number). Only a failing file pays for the second pass.
func locateCOCOError(data []byte, err error) error {
	var lists struct {
		Images      []json.RawMessage `json:"images"`
		Annotations []json.RawMessage `json:"annotations"`
		Categories  []json.RawMessage `json:"categories"`
	}
	if json.Unmarshal(data, &lists) != nil {
		return fmt.Errorf("malformed json: %w", plainJSONError(err))
	}
	for _, l := range []struct {
		field string
		items []json.RawMessage
		into  func() any
	}{
		{"images", lists.Images, func() any { return new(cocoImage) }},
		{"annotations", lists.Annotations, func() any { return new(cocoAnnotation) }},
		{"categories", lists.Categories, func() any { return new(cocoCategory) }},
	} {
		for i, raw := range l.items {
			if e := json.Unmarshal(raw, l.into()); e != nil {
				var id struct {
					ID *int64 `json:"id"`
				}
				if json.Unmarshal(raw, &id) == nil && id.ID != nil {
					return fmt.Errorf("%s[%d] (id %d): %w", l.field, i, *id.ID, plainJSONError(e))
				}
				return fmt.Errorf("%s[%d]: %w", l.field, i, plainJSONError(e))
			}
		}
	}
	return fmt.Errorf("malformed json: %w", plainJSONError(err))
}

// plainJSONError says a type mismatch in JSON terms rather than Go's
// (field bbox holds a string, want a number).
func plainJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	want := "a " + te.Type.Kind().String()
	switch te.Type.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a number"
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Struct, reflect.Map:
		want = "an object"
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	}
	field := te.Field
	if field == "" {
		field = "the document"
	}
	return fmt.Errorf("field %s holds a %s, want %s", field, te.Value, want)
}

func loadCOCO(dir, split string, opts LoadOptions) (*Dataset, error) {
	annDir := filepath.Join(dir, "annotations")
	rep := newReportBuilder("image")
	path := filepath.Join(annDir, "instances.json")
	if split != "" {
		p := filepath.Join(annDir, "instances_"+split+".json")
		if isFile(p) {
			path = p
		} else if isFile(path) {
			rep.note("split %q: no instances_%s.json, read instances.json", split, split)
		}
	}
	if !isFile(path) {
		var have []string
		m, _ := filepath.Glob(filepath.Join(annDir, "instances*.json"))
		for _, x := range m {
			s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(x), "instances"), ".json")
			if s = strings.TrimPrefix(s, "_"); s == "" {
				s = `"" (instances.json)`
			}
			have = append(have, s)
		}
		want := "instances.json"
		if split != "" {
			want = "instances_" + split + ".json nor instances.json"
		}
		return nil, fmt.Errorf("%w: %s has no %s; splits are %s", ErrNoSplit, annDir, want, strings.Join(have, ", "))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	f, err := parseCOCO(data)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}

	// Class indices follow category ids, so two files listing the same
	// categories in another order still agree.
	cats := make([]Category, len(f.Categories))
	for i, c := range f.Categories {
		cats[i] = Category{ID: c.ID, Name: c.Name}
	}
	sort.Slice(cats, func(i, j int) bool { return cats[i].ID < cats[j].ID })
	if len(opts.Classes) > 0 {
		if err := sameClasses(cats, opts.Classes, path); err != nil {
			return nil, err
		}
	}
	index := make(map[int64]int, len(cats))
	known := make([]string, len(cats))
	for i, c := range cats {
		index[c.ID] = i
		known[i] = fmt.Sprintf("%d %s", c.ID, c.Name)
	}

	ds := &Dataset{Categories: cats, Images: make([]Image, len(f.Images))}
	pos := make(map[int64]int, len(f.Images))
	for i, ci := range f.Images {
		p, err := cocoImagePath(dir, split, ci.FileName)
		if errors.Is(err, ErrOutsideRoot) {
			return nil, fmt.Errorf("dataset: %s: images[%d] (id %d): %w", path, i, ci.ID, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: images[%d] (id %d): %v", ErrMissingImage, path, i, ci.ID, err)
		}
		w, h := ci.Width, ci.Height
		if w == 0 || h == 0 {
			if w, h, err = imageSize(p); err != nil {
				return nil, fmt.Errorf("dataset: %s: images[%d] has no width/height and its image: %w", path, i, err)
			}
		}
		ds.Images[i] = Image{ID: ci.ID, Path: p, Width: w, Height: h}
		pos[ci.ID] = i
	}
	for i, a := range f.Annotations {
		cls, ok := index[a.CategoryID]
		if !ok {
			return nil, unknownClassError(path, fmt.Sprintf("annotations[%d] (id %d) has category_id %d", i, a.ID, a.CategoryID), known)
		}
		im := &ds.Images[pos[a.ImageID]]
		o := Object{
			Box:   Box{a.BBox[0], a.BBox[1], a.BBox[0] + a.BBox[2], a.BBox[1] + a.BBox[3]},
			Class: cls,
			Crowd: bool(a.IsCrowd),
		}
		if a.Area != nil {
			o.Area = *a.Area
		}
		im.Objects = finishObject(im.Objects, o, im.Width, im.Height, filepath.Base(im.Path), rep)
	}
	ds.Report = rep.report()
	return ds, nil
}

func sameClasses(cats []Category, want []string, path string) error {
	have := make([]string, len(cats))
	for i, c := range cats {
		have[i] = c.Name
	}
	if strings.Join(have, "\x00") != strings.Join(want, "\x00") {
		return fmt.Errorf("%w: %s has categories %s, want %s", ErrUnknownClass, path, strings.Join(have, ", "), strings.Join(want, ", "))
	}
	return nil
}

// cocoImagePath finds an image file: COCO layouts put them under images/,
// images/<split>/ (or <split>/, as train2017/), or next to the annotations.
// A file_name that leads outside dir (absolute elsewhere, or climbing out
// with "..") is ErrOutsideRoot: annotations never make Load read other files.
func cocoImagePath(dir, split, fileName string) (string, error) {
	rel := filepath.FromSlash(fileName)
	if filepath.IsAbs(rel) {
		r, err := filepath.Rel(dir, filepath.Clean(rel))
		if err != nil || !filepath.IsLocal(r) {
			return "", fmt.Errorf("file_name %q is not inside %s: %w", fileName, dir, ErrOutsideRoot)
		}
		rel = r
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file_name %q leads outside %s: %w", fileName, dir, ErrOutsideRoot)
	}
	candidates := []string{filepath.Join(dir, "images", rel)}
	if split != "" && filepath.IsLocal(split) {
		candidates = append(candidates, filepath.Join(dir, "images", split, rel), filepath.Join(dir, split, rel))
	}
	candidates = append(candidates, filepath.Join(dir, rel))
	for _, p := range candidates {
		if isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("image %q not found at %s", fileName, strings.Join(candidates, " or "))
}

// WriteCOCO writes ds as a COCO instances JSON at path, atomically. An
// image's file_name is its path relative to <ds.Root>/images when it lies
// there, else relative to ds.Root, so Load finds it again. Category ids,
// crowd flags and areas are written as they are.
func WriteCOCO(path string, ds *Dataset) error {
	f := cocoFile{
		Info:        &cocoInfo{Description: ds.Name},
		Images:      make([]cocoImage, 0, len(ds.Images)),
		Annotations: []cocoAnnotation{},
		Categories:  make([]cocoCategory, len(ds.Categories)),
	}
	for i, c := range ds.Categories {
		f.Categories[i] = cocoCategory{ID: c.ID, Name: c.Name}
	}
	imagesDir := filepath.Join(ds.Root, "images")
	var annID int64
	for _, im := range ds.Images {
		var name string
		if r, err := filepath.Rel(imagesDir, im.Path); err == nil && filepath.IsLocal(r) {
			name = r
		} else if r, err := filepath.Rel(ds.Root, im.Path); err == nil && filepath.IsLocal(r) {
			name = r
		} else {
			return fmt.Errorf("dataset: write %s: image %d (%s) is outside the dataset folder %s, where Load would refuse it: %w", path, im.ID, im.Path, ds.Root, ErrOutsideRoot)
		}
		f.Images = append(f.Images, cocoImage{ID: im.ID, FileName: filepath.ToSlash(name), Width: im.Width, Height: im.Height})
		for _, o := range im.Objects {
			if o.Class < 0 || o.Class >= len(ds.Categories) {
				return fmt.Errorf("dataset: write %s: image %d has class %d, want 0..%d", path, im.ID, o.Class, len(ds.Categories)-1)
			}
			annID++
			area := o.Area
			if area <= 0 {
				area = o.Box.Area()
			}
			f.Annotations = append(f.Annotations, cocoAnnotation{
				ID:         annID,
				ImageID:    im.ID,
				CategoryID: ds.Categories[o.Class].ID,
				BBox:       []float64{o.Box.X1, o.Box.Y1, o.Box.Width(), o.Box.Height()},
				Area:       &area,
				IsCrowd:    crowdFlag(o.Crowd),
			})
		}
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("dataset: write %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return nil
}
