package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
)

func init() { register(newEvalCmd) }

// evalDetectFunc produces detections, in COCO results form, for every image
// of a loaded dataset split.
type evalDetectFunc func(ctx context.Context, ds *dataset.Dataset) ([]evaluate.Detection, error)

// evalMode is a way of producing detections other than reading a results
// file, chosen by its own flags.
type evalMode struct {
	// Name describes the detections in the output ("checkpoint runs/x/best").
	Name string
	// Classes, when set, are the detector's class names in order; the
	// dataset must have the same ones (dataset.LoadOptions.Classes).
	Classes []string
	Detect  evalDetectFunc
}

// evalSource plugs a detection mode into `gidedge eval` from another file's
// init (the trainer adds --checkpoint this way): AddFlags registers its
// flags on the command; Resolve, called after parsing, returns nil when its
// flags were not given.
type evalSource struct {
	AddFlags func(cmd *cobra.Command)
	Resolve  func(ctx context.Context) (*evalMode, error)
}

var evalSources []evalSource

// registerEvalSource adds a detection mode to `gidedge eval`; call it from init.
func registerEvalSource(s evalSource) { evalSources = append(evalSources, s) }

type evalOptions struct {
	Detections  string // COCO results JSON to score
	Data        string
	Split       string
	JSON        bool
	PRCurve     string // PNG/SVG/PDF path for the precision-recall plot
	SaveResults string // write the scored detections as COCO results JSON
	// Mode, when set, produces the detections instead of Detections.
	Mode *evalMode
}

func newEvalCmd() *cobra.Command {
	o := evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval --detections results.json --data DIR",
		Short: "Score detections with COCO metrics (AP@[.5:.95], AP50, AP75, per class)",
		Long: `eval scores a detector's COCO results file
([{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]) against the
annotations of a VOC or COCO dataset split, with pycocotools' COCOeval
semantics: AP averaged over IoU 0.50:0.95, AP50, AP75, AP and AR by object
size, AR at 1/10/100 detections, crowd and VOC "difficult" objects ignored,
and AP per class. -1 means undefined (nothing to measure).

image_id and category_id must be the dataset's: COCO ids as in the JSON; for
VOC, image ids are the digits of the file name (BloodImage_00042 → 42) and
category ids are 1..K in the class order that dataset loading reports.`,
		Example: `  gidedge eval --detections results.json --data runs/synth --split test
  gidedge eval --detections bccd_results.json --data ../shared/data/bccd --split test --json
  gidedge eval --detections r.json --data ../shared/data/coco128 --split "" --pr-curve pr.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range evalSources {
				m, err := s.Resolve(cmd.Context())
				if err != nil {
					return err
				}
				if m == nil {
					continue
				}
				if o.Mode != nil {
					return fmt.Errorf("eval: detections from both %s and %s; choose one", o.Mode.Name, m.Name)
				}
				o.Mode = m
			}
			return runEval(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Detections, "detections", "", "COCO results JSON to score")
	f.StringVar(&o.Data, "data", "", "dataset folder, VOC or COCO (required)")
	f.StringVar(&o.Split, "split", "test", `split to score against ("" for every image of a VOC set or instances.json)`)
	f.BoolVar(&o.JSON, "json", false, "print one JSON object (AP, AP50, AP75, …, per_class)")
	f.StringVar(&o.PRCurve, "pr-curve", "", "write precision-recall curves to this .png, .svg or .pdf")
	f.StringVar(&o.SaveResults, "save-results", "", "write the scored detections as a COCO results JSON")
	_ = cmd.MarkFlagRequired("data")
	for _, s := range evalSources {
		s.AddFlags(cmd)
	}
	return withDevice(cmd)
}

// evalOutput is what --json prints: the metrics and where they came from.
type evalOutput struct {
	*evaluate.Metrics
	Dataset    string   `json:"dataset"`
	Split      string   `json:"split"`
	Format     string   `json:"format"`
	Source     string   `json:"source"`
	LoadReport []string `json:"load_report"`
	PRCurve    string   `json:"pr_curve,omitempty"`
}

func runEval(ctx context.Context, o evalOptions, stdout io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Data == "" {
		return errors.New("eval: --data is required")
	}
	source := o.Detections
	switch {
	case o.Mode != nil && o.Detections != "":
		return fmt.Errorf("eval: detections from both --detections and %s; choose one", o.Mode.Name)
	case o.Mode != nil:
		source = o.Mode.Name
	case o.Detections == "":
		return errors.New("eval: nothing to score: give --detections FILE (a COCO results JSON)")
	}
	var load dataset.LoadOptions
	if o.Mode != nil {
		load.Classes = o.Mode.Classes
	}
	ds, err := dataset.LoadWith(o.Data, o.Split, load)
	if err != nil {
		return err
	}
	var dets []evaluate.Detection
	if o.Mode != nil {
		dets, err = o.Mode.Detect(ctx, ds)
	} else {
		dets, err = evaluate.ReadResults(o.Detections)
	}
	if err != nil {
		return err
	}
	m, err := evaluate.COCO(ds, dets)
	if err != nil {
		if o.Detections != "" {
			return fmt.Errorf("%w (scoring %s against %s split %q)", err, o.Detections, o.Data, o.Split)
		}
		return err
	}
	if o.PRCurve != "" {
		if err := evaluate.PlotPR(o.PRCurve, m, fmt.Sprintf("%s %s", ds.Name, o.Split)); err != nil {
			return err
		}
	}
	if o.SaveResults != "" {
		if err := evaluate.WriteResults(o.SaveResults, dets); err != nil {
			return err
		}
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(evalOutput{
			Metrics: m, Dataset: ds.Name, Split: o.Split, Format: ds.Format, Source: source,
			LoadReport: ds.Report.Lines(), PRCurve: o.PRCurve,
		})
	}
	noun := "detections"
	if len(dets) == 1 {
		noun = "detection"
	}
	fmt.Fprintf(stdout, "%s: %d %s on %d images of %s (%s, split %q)\n", source, len(dets), noun, len(ds.Images), ds.Name, ds.Format, o.Split)
	if err := ds.WriteReport(stdout, "  "); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := m.WriteSummary(stdout); err != nil {
		return err
	}
	if o.PRCurve != "" {
		fmt.Fprintf(stdout, "\nprecision-recall curves: %s\n", o.PRCurve)
	}
	if o.SaveResults != "" {
		fmt.Fprintf(stdout, "results: %s\n", o.SaveResults)
	}
	return nil
}
