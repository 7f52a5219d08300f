package dataset

import (
	"fmt"
	"io"
	"strings"
)

// RepairKind names one kind of annotation problem Load repaired or noted.
type RepairKind string

// The kinds of Repair, in the order LoadReport lists them.
const (
	RepairClipped       RepairKind = "clipped"        // box crossed the border: clipped, kept
	RepairOutside       RepairKind = "outside"        // box entirely outside the image: dropped
	RepairZeroArea      RepairKind = "zero-area"      // x2<=x1 or y2<=y1 as annotated: dropped
	RepairDuplicate     RepairKind = "duplicate"      // same class and box as another: dropped
	RepairNearDuplicate RepairKind = "near-duplicate" // IoU >= 0.9 with another of its class: kept
)

var repairOrder = []RepairKind{RepairClipped, RepairOutside, RepairZeroArea, RepairDuplicate, RepairNearDuplicate}

// Repair counts the boxes of one kind of problem and the files they are in.
type Repair struct {
	Kind  RepairKind
	Boxes int
	Files []string // base names, in order of first appearance
	Unit  string   // "file" (VOC annotation files) or "image" (COCO images)
}

// maxListedFiles bounds how many file names a report line spells out.
const maxListedFiles = 5

// String is the summary line, e.g. "dropped 3 boxes with zero area in 2
// files: a.xml, b.xml".
func (r Repair) String() string {
	var what string
	switch r.Kind {
	case RepairClipped:
		what = "clipped %d %s that crossed the image border"
	case RepairOutside:
		what = "dropped %d %s entirely outside the image"
	case RepairZeroArea:
		what = "dropped %d %s with zero area"
	case RepairDuplicate:
		what = "dropped %d duplicate %s (same class and coordinates as another)"
	case RepairNearDuplicate:
		what = "kept %d near-duplicate %s (IoU >= 0.9 with another of the same class)"
	default:
		what = string(r.Kind) + ": %d %s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, what, r.Boxes, plural(r.Boxes, "box", "boxes"))
	unit := r.Unit
	if unit == "" {
		unit = "file"
	}
	fmt.Fprintf(&b, " in %d %s: ", len(r.Files), plural(len(r.Files), unit, unit+"s"))
	shown := r.Files
	if len(shown) > maxListedFiles {
		shown = shown[:maxListedFiles]
	}
	b.WriteString(strings.Join(shown, ", "))
	if more := len(r.Files) - len(shown); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// LoadReport summarises what Load read and every repair it made.
type LoadReport struct {
	Images, Objects int      // kept
	Crowd           int      // kept objects marked crowd or difficult
	Repairs         []Repair // one per kind that occurred, in a fixed order
	Notes           []string // how ambiguous choices were resolved
}

// Count returns the number of boxes of a kind ("clipped", "outside",
// "zero-area", "duplicate", "near-duplicate").
func (r LoadReport) Count(kind RepairKind) int {
	for _, x := range r.Repairs {
		if x.Kind == kind {
			return x.Boxes
		}
	}
	return 0
}

// Dropped is the number of annotated boxes Load did not keep.
func (r LoadReport) Dropped() int {
	return r.Count(RepairOutside) + r.Count(RepairZeroArea) + r.Count(RepairDuplicate)
}

// Lines returns one line for the totals, one per repair kind and one per
// note.
func (r LoadReport) Lines() []string {
	lines := []string{fmt.Sprintf("%d images, %d objects (%d crowd/difficult)", r.Images, r.Objects, r.Crowd)}
	for _, x := range r.Repairs {
		lines = append(lines, x.String())
	}
	return append(lines, r.Notes...)
}

// String joins Lines with newlines.
func (r LoadReport) String() string { return strings.Join(r.Lines(), "\n") }

// WriteReport prints what Load read and every repair it made: the one
// report every command that loads a dataset shows, so a box dropped by
// `gidedge train` is reported exactly as `gidedge eval` reports it. The
// first line names the dataset, format and split; repairs and notes follow,
// indented by two more spaces. Each line starts with indent.
func (d *Dataset) WriteReport(w io.Writer, indent string) error {
	lines := d.Report.Lines()
	var b strings.Builder
	fmt.Fprintf(&b, "%sdataset %s (%s, split %q): %s\n", indent, d.Name, d.Format, d.Split, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(&b, "%s  %s\n", indent, l)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reportBuilder collects repairs while a dataset is read.
type reportBuilder struct {
	unit  string
	kinds map[RepairKind]*Repair
	seen  map[RepairKind]map[string]bool
	notes []string
}

func newReportBuilder(unit string) *reportBuilder {
	return &reportBuilder{unit: unit, kinds: map[RepairKind]*Repair{}, seen: map[RepairKind]map[string]bool{}}
}

func (b *reportBuilder) add(kind RepairKind, file string) {
	r := b.kinds[kind]
	if r == nil {
		r = &Repair{Kind: kind, Unit: b.unit}
		b.kinds[kind] = r
		b.seen[kind] = map[string]bool{}
	}
	r.Boxes++
	if !b.seen[kind][file] {
		b.seen[kind][file] = true
		r.Files = append(r.Files, file)
	}
}

func (b *reportBuilder) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *reportBuilder) report() LoadReport {
	var r LoadReport
	for _, k := range repairOrder {
		if x := b.kinds[k]; x != nil {
			r.Repairs = append(r.Repairs, *x)
		}
	}
	r.Notes = b.notes
	return r
}
