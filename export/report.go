package export

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gidedge/gidedge/internal/human"
)

// WriteText prints the report for people: what was exported, the graph's
// signature and the parity figures.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	if r.Written {
		ew.printf("exported %s (%s, %s backbone, %d classes) to %s\n", r.Config, r.Family, r.Backbone, r.Classes, r.Path)
	} else {
		ew.printf("export of %s (%s, %s backbone, %d classes) to %s failed; nothing was written\n", r.Config, r.Family, r.Backbone, r.Classes, r.Path)
	}
	ew.printf("  opset %d (IR %d), %d nodes, %s parameters, %d batch norms folded, %s\n",
		r.Opset, r.IRVersion, r.Nodes, thousands(r.Params), r.FoldedBN, human.Bytes(int64(r.Bytes)))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  input\t%s\t%s\n", r.Input.Name, shapeString(r.Input.Shape))
	for _, o := range r.Outputs {
		fmt.Fprintf(tw, "  output\t%s\t%s\n", o.Name, shapeString(o.Shape))
	}
	tw.Flush()
	if p := r.Parity; p != nil {
		ew.printf("parity: %d images through the engine and ONNX Runtime %s, tolerance %.0e of each output's scale\n", p.Batch, p.ORTVersion, p.Tolerance)
		width := len("output")
		for _, o := range p.Outputs {
			width = max(width, len(o.Name))
		}
		ew.printf("  %-*s  %10s  %10s  %10s\n", width, "output", "max |diff|", "scale", "relative")
		for _, o := range p.Outputs {
			ew.printf("  %-*s  %10.3e  %10.4g  %10.3e\n", width, o.Name, o.MaxAbsDiff, o.Scale, o.Relative)
		}
		verdict := "ok"
		if !p.OK() {
			verdict = "FAILED"
		}
		ew.printf("  worst: %s %.3e (%s)\n", p.WorstOutput, p.Worst, verdict)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

// shapeString writes a shape with the dynamic batch as "batch" and a
// dynamic later dimension (a two-stage export's proposals) by its name.
func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		switch {
		case d < 0 && i == 0:
			parts[i] = "batch"
		case d < 0:
			parts[i] = ProposalsDim
		default:
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
