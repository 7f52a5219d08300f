package evaluate

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteSummary prints the twelve COCOeval summary lines, in pycocotools'
// wording, followed by a per-class table.
func (m *Metrics) WriteSummary(w io.Writer) error {
	lines := []struct {
		name, iou, area string
		dets            int
		v               float64
	}{
		{"Average Precision  (AP)", "0.50:0.95", "all", 100, m.AP},
		{"Average Precision  (AP)", "0.50     ", "all", 100, m.AP50},
		{"Average Precision  (AP)", "0.75     ", "all", 100, m.AP75},
		{"Average Precision  (AP)", "0.50:0.95", "small", 100, m.APSmall},
		{"Average Precision  (AP)", "0.50:0.95", "medium", 100, m.APMedium},
		{"Average Precision  (AP)", "0.50:0.95", "large", 100, m.APLarge},
		{"Average Recall     (AR)", "0.50:0.95", "all", 1, m.AR1},
		{"Average Recall     (AR)", "0.50:0.95", "all", 10, m.AR10},
		{"Average Recall     (AR)", "0.50:0.95", "all", 100, m.AR100},
		{"Average Recall     (AR)", "0.50:0.95", "small", 100, m.ARSmall},
		{"Average Recall     (AR)", "0.50:0.95", "medium", 100, m.ARMedium},
		{"Average Recall     (AR)", "0.50:0.95", "large", 100, m.ARLarge},
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, " %s @[ IoU=%s | area=%6s | maxDets=%3d ] = %.3f\n", l.name, l.iou, l.area, l.dets, l.v); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nclass\tid\tground truth\tdetections\tAP\tAP50\tAP75\t")
	for _, c := range m.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t\n", c.Name, c.ID, c.GroundTruth, c.Detections, metric(c.AP), metric(c.AP50), metric(c.AP75))
	}
	return tw.Flush()
}

// metric prints an undefined (-1) value as "-".
func metric(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
