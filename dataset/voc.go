package dataset

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// vocAnnotation is the part of a VOC XML file Load uses. Numbers are kept
// as text so a bad one can be reported with its field name.
type vocAnnotation struct {
	Filename string `xml:"filename"`
	Size     struct {
		Width  string `xml:"width"`
		Height string `xml:"height"`
	} `xml:"size"`
	Objects []vocObject `xml:"object"`
}

type vocObject struct {
	Name      string `xml:"name"`
	Difficult string `xml:"difficult"`
	BndBox    *struct {
		XMin string `xml:"xmin"`
		YMin string `xml:"ymin"`
		XMax string `xml:"xmax"`
		YMax string `xml:"ymax"`
	} `xml:"bndbox"`
}

// vocBox is one parsed VOC object in continuous pixel coordinates.
type vocBox struct {
	Name      string
	Difficult bool
	Box       Box
}

// vocFile is a parsed annotation file.
type vocFile struct {
	Filename      string
	Width, Height int // 0 when the file has no usable <size>
	Objects       []vocBox
}

// parseVOC parses one VOC annotation. It checks syntax and numbers only;
// class names and geometry are checked against the dataset later.
func parseVOC(data []byte) (vocFile, error) {
	var a vocAnnotation
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		return vocFile{}, fmt.Errorf("malformed xml: %w", err)
	}
	f := vocFile{Filename: strings.TrimSpace(a.Filename)}
	w, errW := parseSize(a.Size.Width)
	h, errH := parseSize(a.Size.Height)
	if errW != nil {
		return vocFile{}, fmt.Errorf("size/width: %w", errW)
	}
	if errH != nil {
		return vocFile{}, fmt.Errorf("size/height: %w", errH)
	}
	f.Width, f.Height = w, h
	for i, o := range a.Objects {
		name := strings.TrimSpace(o.Name)
		if name == "" {
			return vocFile{}, fmt.Errorf("object %d: empty <name>", i+1)
		}
		if o.BndBox == nil {
			return vocFile{}, fmt.Errorf("object %d (%s): no <bndbox>", i+1, name)
		}
		var v [4]float64
		for k, field := range []struct{ tag, text string }{
			{"xmin", o.BndBox.XMin}, {"ymin", o.BndBox.YMin}, {"xmax", o.BndBox.XMax}, {"ymax", o.BndBox.YMax},
		} {
			x, err := strconv.ParseFloat(strings.TrimSpace(field.text), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return vocFile{}, fmt.Errorf("object %d (%s): bndbox/%s is %q, want a finite number", i+1, name, field.tag, field.text)
			}
			v[k] = x
		}
		difficult := false
		switch d := strings.TrimSpace(o.Difficult); d {
		case "", "0", "false":
		case "1", "true":
			difficult = true
		default:
			return vocFile{}, fmt.Errorf("object %d (%s): difficult is %q, want 0 or 1", i+1, name, d)
		}
		// VOC pixel indices are 1-based and inclusive: xmin=1, xmax=W
		// covers the whole row, which is [0, W) in continuous coordinates.
		// A box with xmax <= xmin as written is a click, not an object:
		// it stays degenerate so Load drops and counts it.
		box := Box{v[0], v[1], v[2], v[3]}
		if v[2] > v[0] && v[3] > v[1] {
			box.X1, box.Y1 = v[0]-1, v[1]-1
		}
		f.Objects = append(f.Objects, vocBox{Name: name, Difficult: difficult, Box: box})
	}
	return f, nil
}

// parseSize reads a VOC size field; empty means unknown (0).
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x != math.Trunc(x) || x > 1<<20 {
		return 0, fmt.Errorf("%q, want a whole number of pixels", s)
	}
	return int(x), nil
}

// vocImageExts are tried, in order, when <filename> does not name a file.
var vocImageExts = []string{".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}

func loadVOC(dir, split string, opts LoadOptions) (*Dataset, error) {
	annDir := filepath.Join(dir, "Annotations")
	all, err := filepath.Glob(filepath.Join(annDir, "*.xml"))
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("dataset: %s has no *.xml annotation files: %w", annDir, ErrFormat)
	}
	sort.Strings(all)
	stems := make([]string, len(all))
	for i, p := range all {
		stems[i] = strings.TrimSuffix(filepath.Base(p), ".xml")
	}
	rep := newReportBuilder("file")

	var wanted []string
	if split == "" {
		wanted = stems
	} else {
		wanted, err = readVOCSplit(dir, split)
		if err != nil {
			return nil, err
		}
	}

	parsed := map[string]vocFile{}
	parse := func(stem string) (vocFile, error) {
		if f, ok := parsed[stem]; ok {
			return f, nil
		}
		p := filepath.Join(annDir, stem+".xml")
		data, err := os.ReadFile(p)
		if err != nil {
			return vocFile{}, fmt.Errorf("dataset: split %q lists %s: %w", split, stem, err)
		}
		f, err := parseVOC(data)
		if err != nil {
			return vocFile{}, fmt.Errorf("dataset: %s: %w", p, err)
		}
		parsed[stem] = f
		return f, nil
	}

	classes, err := vocClasses(dir, stems, opts, parse, rep)
	if err != nil {
		return nil, err
	}
	index := make(map[string]int, len(classes))
	cats := make([]Category, len(classes))
	for i, c := range classes {
		index[c] = i
		cats[i] = Category{ID: int64(i + 1), Name: c}
	}

	ids, byDigits := vocImageIDs(stems)
	if !byDigits {
		rep.note("image ids are 1-based positions among the sorted annotation files (file stems do not carry unique numbers)")
	}

	ds := &Dataset{Categories: cats}
	for _, stem := range wanted {
		f, err := parse(stem)
		if err != nil {
			return nil, err
		}
		annPath := filepath.Join(annDir, stem+".xml")
		imgPath, err := vocImagePath(dir, stem, f.Filename)
		if errors.Is(err, ErrOutsideRoot) {
			return nil, fmt.Errorf("dataset: %s: %w", annPath, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMissingImage, annPath, err)
		}
		w, h := f.Width, f.Height
		if w == 0 || h == 0 {
			w, h, err = imageSize(imgPath)
			if err != nil {
				return nil, fmt.Errorf("dataset: %s has no <size> and its image: %w", annPath, err)
			}
		}
		im := Image{ID: ids[stem], Path: imgPath, Width: w, Height: h}
		where := stem + ".xml"
		for i, o := range f.Objects {
			cls, ok := index[o.Name]
			if !ok {
				return nil, unknownClassError(annPath, fmt.Sprintf("object %d has class %q", i+1, o.Name), classes)
			}
			im.Objects = finishObject(im.Objects, Object{Box: o.Box, Class: cls, Crowd: o.Difficult}, w, h, where, rep)
		}
		ds.Images = append(ds.Images, im)
	}
	ds.Report = rep.report()
	return ds, nil
}

// readVOCSplit reads ImageSets/Main/<split>.txt: one image stem a line,
// optionally followed by a per-class flag (VOC's <class>_<split>.txt files).
func readVOCSplit(dir, split string) ([]string, error) {
	mainDir := filepath.Join(dir, "ImageSets", "Main")
	p := filepath.Join(mainDir, split+".txt")
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		var have []string
		if m, _ := filepath.Glob(filepath.Join(mainDir, "*.txt")); len(m) > 0 {
			for _, x := range m {
				have = append(have, strings.TrimSuffix(filepath.Base(x), ".txt"))
			}
		}
		if len(have) == 0 {
			return nil, fmt.Errorf("%w: %s does not exist and %s has no split files (use an empty split for every image)", ErrNoSplit, p, mainDir)
		}
		return nil, fmt.Errorf("%w: %s does not exist; splits are %s", ErrNoSplit, p, strings.Join(have, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var stems []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || seen[fields[0]] {
			continue
		}
		seen[fields[0]] = true
		stems = append(stems, fields[0])
	}
	return stems, nil
}

// vocClasses resolves the class list: options, then classes.txt or
// labels.txt, then every name in the annotation files, sorted.
func vocClasses(dir string, stems []string, opts LoadOptions, parse func(string) (vocFile, error), rep *reportBuilder) ([]string, error) {
	if len(opts.Classes) > 0 {
		return checkClassList(opts.Classes, "options")
	}
	for _, name := range []string{"classes.txt", "labels.txt"} {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
		var classes []string
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				classes = append(classes, line)
			}
		}
		rep.note("classes from %s", name)
		return checkClassList(classes, p)
	}
	names := map[string]bool{}
	unreadable := 0
	var firstErr error
	for _, stem := range stems {
		f, err := parse(stem)
		if err != nil {
			// A broken file outside the split must not stop loading the
			// split; one inside it fails later with its own error.
			unreadable++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, o := range f.Objects {
			names[o.Name] = true
		}
	}
	classes := sortedKeys(names)
	if len(classes) == 0 && firstErr != nil {
		return nil, firstErr
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("dataset: %s: no object names in %d annotation files and no classes.txt: %w", dir, len(stems), ErrUnknownClass)
	}
	msg := fmt.Sprintf("classes from the names in %d annotation files, sorted: %s", len(stems)-unreadable, strings.Join(classes, ", "))
	if unreadable > 0 {
		msg += fmt.Sprintf(" (%d unreadable files skipped)", unreadable)
	}
	rep.note("%s", msg)
	return classes, nil
}

func checkClassList(classes []string, source string) ([]string, error) {
	if len(classes) == 0 {
		return nil, fmt.Errorf("dataset: %s: empty class list", source)
	}
	seen := map[string]bool{}
	for _, c := range classes {
		if c == "" {
			return nil, fmt.Errorf("dataset: %s: empty class name", source)
		}
		if seen[c] {
			return nil, fmt.Errorf("dataset: %s: class %q listed twice", source, c)
		}
		seen[c] = true
	}
	return append([]string(nil), classes...), nil
}

// vocImageIDs numbers images by the digits in their stems when that is
// unique, which lets third-party tools reproduce the ids; otherwise by
// position.
func vocImageIDs(stems []string) (map[string]int64, bool) {
	ids := make(map[string]int64, len(stems))
	used := make(map[int64]bool, len(stems))
	for _, s := range stems {
		var digits strings.Builder
		for _, r := range s {
			if r >= '0' && r <= '9' {
				digits.WriteRune(r)
			}
		}
		id, err := strconv.ParseInt(digits.String(), 10, 64)
		if digits.Len() == 0 || err != nil || used[id] {
			ids = make(map[string]int64, len(stems))
			for i, s := range stems {
				ids[s] = int64(i + 1)
			}
			return ids, false
		}
		used[id] = true
		ids[s] = id
	}
	return ids, true
}

// vocImagePath finds an annotation's image in JPEGImages/: the file its
// <filename> names (by base name, as VOC tools write it), else the stem with
// one of vocImageExts. A <filename> that is absolute or climbs out with ".."
// is ErrOutsideRoot rather than quietly read as its base name.
func vocImagePath(dir, stem, filename string) (string, error) {
	imgDir := filepath.Join(dir, "JPEGImages")
	var tried []string
	if filename != "" {
		if !filepath.IsLocal(filepath.FromSlash(filename)) {
			return "", fmt.Errorf("<filename> %q leads outside %s: %w", filename, imgDir, ErrOutsideRoot)
		}
		p := filepath.Join(imgDir, filepath.Base(filepath.FromSlash(filename)))
		if isFile(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	for _, ext := range vocImageExts {
		p := filepath.Join(imgDir, stem+ext)
		if isFile(p) {
			return p, nil
		}
		if ext == ".jpg" && !slices.Contains(tried, p) {
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("image not found at %s (nor %s with .jpeg or .png)", strings.Join(tried, " or "), stem)
}

// imageSize reads the size from an image header without decoding pixels.
func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrMissingImage, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s: %w", ErrDecode, path, err)
	}
	return cfg.Width, cfg.Height, nil
}
