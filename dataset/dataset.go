package dataset

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/geom"
)

var (
	// ErrUnknownClass reports an object whose class name or category id is
	// not one of the dataset's classes.
	ErrUnknownClass = errors.New("dataset: unknown class")
	// ErrMissingImage reports an annotated image whose file does not exist.
	ErrMissingImage = errors.New("dataset: missing image file")
	// ErrDecode reports an image file that is not a decodable JPEG or PNG.
	ErrDecode = errors.New("dataset: cannot decode image")
	// ErrNoSplit reports a split that the dataset folder does not define.
	ErrNoSplit = errors.New("dataset: no such split")
	// ErrFormat reports a folder that is neither a VOC nor a COCO dataset.
	ErrFormat = errors.New("dataset: unrecognised dataset folder")
	// ErrOutsideRoot reports an annotation whose image path (a COCO
	// file_name, a VOC <filename>) leads outside the dataset folder.
	ErrOutsideRoot = errors.New("dataset: image path outside the dataset folder")
)

// Box is an axis-aligned box, x1, y1, x2, y2 in pixels of the original
// image (continuous coordinates: x2-x1 is the width).
type Box struct{ X1, Y1, X2, Y2 float64 }

// Width is X2-X1, or 0 for an empty box.
func (b Box) Width() float64 { return math.Max(0, b.X2-b.X1) }

// Height is Y2-Y1, or 0 for an empty box.
func (b Box) Height() float64 { return math.Max(0, b.Y2-b.Y1) }

// Area is Width*Height.
func (b Box) Area() float64 { return b.Width() * b.Height() }

// Clip returns b limited to [0,w]x[0,h].
func (b Box) Clip(w, h float64) Box {
	return Box{clamp(b.X1, 0, w), clamp(b.Y1, 0, h), clamp(b.X2, 0, w), clamp(b.Y2, 0, h)}
}

// IoU is the intersection over union of b and o (geom.IoU), 0 when they
// do not overlap.
func (b Box) IoU(o Box) float64 {
	return geom.IoU([4]float64{b.X1, b.Y1, b.X2, b.Y2}, [4]float64{o.X1, o.Y1, o.X2, o.Y2})
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// Object is one annotated instance.
type Object struct {
	Box   Box
	Class int     // contiguous index into Dataset.Categories
	Crowd bool    // COCO iscrowd or VOC difficult: ignored by evaluation, not trained on
	Area  float64 // COCO "area" when given, else box area
}

// Image is one annotated image. Path is the image file; Width and Height
// are the annotated size, which the image must have when decoded.
type Image struct {
	ID            int64
	Path          string
	Width, Height int
	Objects       []Object
}

// Category is one class. ID is the original id (COCO's are not contiguous);
// the category's position in Dataset.Categories is the class index.
type Category struct {
	ID   int64
	Name string
}

// Dataset is a loaded split of a detection dataset.
type Dataset struct {
	Name, Root, Split string
	Format            string // "voc" or "coco"
	Categories        []Category
	Images            []Image
	Report            LoadReport
}

// ClassNames returns the category names in class-index order.
func (d *Dataset) ClassNames() []string {
	names := make([]string, len(d.Categories))
	for i, c := range d.Categories {
		names[i] = c.Name
	}
	return names
}

// ClassIndex returns the class index of a category name.
func (d *Dataset) ClassIndex(name string) (int, bool) {
	for i, c := range d.Categories {
		if c.Name == name {
			return i, true
		}
	}
	return -1, false
}

// CategoryIndex returns the class index of an original category id.
func (d *Dataset) CategoryIndex(id int64) (int, bool) {
	for i, c := range d.Categories {
		if c.ID == id {
			return i, true
		}
	}
	return -1, false
}

// ClassCounts returns, per class, the number of objects that are not crowd.
func (d *Dataset) ClassCounts() []int {
	n := make([]int, len(d.Categories))
	for _, im := range d.Images {
		for _, o := range im.Objects {
			if !o.Crowd {
				n[o.Class]++
			}
		}
	}
	return n
}

// Formats Load recognises.
const (
	FormatVOC  = "voc"
	FormatCOCO = "coco"
)

// LoadOptions adjusts Load. The zero value detects everything.
type LoadOptions struct {
	// Format forces "voc" or "coco"; empty detects it from the folder.
	Format string
	// Classes fixes the class list and its order. For VOC it replaces
	// classes.txt (or labels.txt) in the dataset folder and the default,
	// which is every name in Annotations/*.xml sorted alphabetically (VOC's
	// own convention); an object with another name is ErrUnknownClass. For
	// COCO the category names must equal it, which catches a checkpoint
	// evaluated on a dataset with other classes.
	Classes []string
}

// Load reads one split of the dataset in dir; see LoadWith.
func Load(dir, split string) (*Dataset, error) {
	return LoadWith(dir, split, LoadOptions{})
}

// LoadWith reads one split of the VOC or COCO dataset in dir.
//
// VOC: Annotations/*.xml, JPEGImages/, ImageSets/Main/<split>.txt; an empty
// split means every annotation file. Category ids are 1..K in class order
// and an image's id is the number formed by the digits of its file stem
// (BloodImage_00042 → 42) when those are unique, else its 1-based position
// among the sorted annotation files.
//
// COCO: annotations/instances_<split>.json, falling back to
// annotations/instances.json (an empty split means instances.json); images
// are looked up under images/, images/<split>/, <split>/ and the folder
// itself.
func LoadWith(dir, split string, opts LoadOptions) (*Dataset, error) {
	dir = filepath.Clean(dir)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("dataset: %s is not a folder: %w", dir, ErrFormat)
	}
	format := opts.Format
	if format == "" {
		format, err = detectFormat(dir)
		if err != nil {
			return nil, err
		}
	}
	var ds *Dataset
	switch format {
	case FormatVOC:
		ds, err = loadVOC(dir, split, opts)
	case FormatCOCO:
		ds, err = loadCOCO(dir, split, opts)
	default:
		return nil, fmt.Errorf("dataset: format %q, want %q or %q", format, FormatVOC, FormatCOCO)
	}
	if err != nil {
		return nil, err
	}
	ds.Name = filepath.Base(dir)
	ds.Root = dir
	ds.Split = split
	ds.Format = format
	ds.Report.Images = len(ds.Images)
	for _, im := range ds.Images {
		for _, o := range im.Objects {
			ds.Report.Objects++
			if o.Crowd {
				ds.Report.Crowd++
			}
		}
	}
	return ds, nil
}

func detectFormat(dir string) (string, error) {
	if isDir(filepath.Join(dir, "Annotations")) && isDir(filepath.Join(dir, "JPEGImages")) {
		return FormatVOC, nil
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "annotations", "instances*.json")); len(matches) > 0 {
		return FormatCOCO, nil
	}
	return "", fmt.Errorf("dataset: %s has neither Annotations/ with JPEGImages/ (VOC) nor annotations/instances*.json (COCO): %w", dir, ErrFormat)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// unknownClassError lists the known classes so the user can see the typo or
// the missing entry in classes.txt.
func unknownClassError(file, what string, known []string) error {
	quoted := make([]string, len(known))
	for i, k := range known {
		quoted[i] = fmt.Sprintf("%q", k)
	}
	return fmt.Errorf("%w: %s: %s, known classes are %s", ErrUnknownClass, file, what, strings.Join(quoted, ", "))
}

// finishObject validates, clips and de-duplicates one annotated box and
// appends it to objs. where names the file for the report.
func finishObject(objs []Object, o Object, w, h int, where string, rep *reportBuilder) []Object {
	if !(o.Box.X2 > o.Box.X1) || !(o.Box.Y2 > o.Box.Y1) {
		rep.add(RepairZeroArea, where)
		return objs
	}
	clipped := o.Box.Clip(float64(w), float64(h))
	if clipped != o.Box {
		if clipped.Area() <= 0 {
			rep.add(RepairOutside, where)
			return objs
		}
		rep.add(RepairClipped, where)
		o.Box = clipped
	}
	if o.Area <= 0 {
		o.Area = o.Box.Area()
	}
	for _, p := range objs {
		if p.Class == o.Class && p.Box == o.Box && p.Crowd == o.Crowd {
			rep.add(RepairDuplicate, where)
			return objs
		}
	}
	for _, p := range objs {
		if p.Class == o.Class && p.Box.IoU(o.Box) >= nearDuplicateIoU {
			rep.add(RepairNearDuplicate, where)
			break
		}
	}
	return append(objs, o)
}

// nearDuplicateIoU is the overlap above which two boxes of one class are
// reported as probably the same object annotated twice.
const nearDuplicateIoU = 0.9

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
