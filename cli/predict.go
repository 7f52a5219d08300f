package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/internal/overlay"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

func init() { register(newPredictCmd) }

type predictOptions struct {
	Checkpoint string
	Images     []string
	Out        string
	// Score hides detections below it in the drawings and the JSON.
	Score   float32
	ImgSize int
	Batch   int
	JSON    bool
}

func newPredictCmd() *cobra.Command {
	o := predictOptions{}
	cmd := &cobra.Command{
		Use:   "predict --checkpoint FILE --out DIR IMAGE...",
		Short: "Detect objects in images with a trained checkpoint",
		Long: `predict runs a checkpoint written by gidedge train (best.safetensors or
last.safetensors) on JPEG or PNG images and writes to --out:

  <name>.jpg / <name>.png  each image with its boxes, labels and scores drawn
  predictions.json         COCO-style: images, categories and annotations
                           (bbox [x, y, w, h] in image pixels, with score)
  results.json             the same detections as a COCO results list, which
                           gidedge eval --detections can score

Image ids are 1..N in argument order; category ids are 1..K in the model's
class order.`,
		Example: `  gidedge predict --checkpoint runs/rs/best.safetensors --out runs/rs/pred runs/synth/images/000001.jpg
  gidedge predict --checkpoint runs/bccd/best.safetensors --score 0.4 --out pred ../shared/data/bccd/JPEGImages/BloodImage_0000*.jpg`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Images = args
			return runPredict(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint from gidedge train (required)")
	f.StringVar(&o.Out, "out", "", "output folder (required)")
	f.Float32Var(&o.Score, "score", 0.3, "lowest score to draw and report")
	f.IntVar(&o.ImgSize, "img-size", 0, "input size (default: the model's)")
	f.IntVar(&o.Batch, "batch", 4, "images per forward pass")
	f.BoolVar(&o.JSON, "json", false, "print predictions.json to stdout as well")
	_ = cmd.MarkFlagRequired("checkpoint")
	_ = cmd.MarkFlagRequired("out")
	return withDevice(cmd)
}

// predictFile is predictions.json.
type predictFile struct {
	Model       string              `json:"model"`
	Checkpoint  string              `json:"checkpoint"`
	Images      []predictImage      `json:"images"`
	Categories  []predictCategory   `json:"categories"`
	Annotations []predictAnnotation `json:"annotations"`
}

type predictImage struct {
	ID       int64  `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Drawn    string `json:"annotated_file"`
}

type predictCategory struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type predictAnnotation struct {
	ID         int64      `json:"id"`
	ImageID    int64      `json:"image_id"`
	CategoryID int64      `json:"category_id"`
	Label      string     `json:"label"`
	BBox       [4]float64 `json:"bbox"`
	Area       float64    `json:"area"`
	Score      float64    `json:"score"`
	IsCrowd    int        `json:"iscrowd"`
}

func runPredict(ctx context.Context, o predictOptions, stdout io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Checkpoint == "" || o.Out == "" {
		return errors.New("predict: --checkpoint and --out are required")
	}
	if len(o.Images) == 0 {
		return errors.New("predict: no images given")
	}
	if o.Score < 0 || o.Score >= 1 {
		return fmt.Errorf("predict: --score %v, want in [0, 1)", o.Score)
	}
	d, _, _, err := models.LoadCheckpoint(o.Checkpoint)
	if err != nil {
		return err
	}
	names := d.Config.ClassNames
	if len(names) != d.Config.NumClasses {
		return fmt.Errorf("predict: checkpoint %s has %d classes but %d class names", o.Checkpoint, d.Config.NumClasses, len(names))
	}
	ds := &dataset.Dataset{Name: "predict", Root: filepath.Dir(o.Images[0]), Split: "predict"}
	for i, n := range names {
		ds.Categories = append(ds.Categories, dataset.Category{ID: int64(i + 1), Name: n})
	}
	seen := map[string]string{}
	for i, path := range o.Images {
		w, h, err := predictImageSize(path)
		if err != nil {
			return err
		}
		stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if prev, dup := seen[stem]; dup {
			return fmt.Errorf("predict: %s and %s would both be drawn as %s; predict them into separate folders", prev, path, stem)
		}
		seen[stem] = path
		ds.Images = append(ds.Images, dataset.Image{ID: int64(i + 1), Path: path, Width: w, Height: h})
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	perImage, err := train.Predict(ctx, d, ds, train.EvalOptions{ImgSize: o.ImgSize, Batch: o.Batch})
	if err != nil {
		return err
	}
	out := predictFile{Model: d.Config.Name, Checkpoint: o.Checkpoint, Annotations: []predictAnnotation{}}
	for _, c := range ds.Categories {
		out.Categories = append(out.Categories, predictCategory{ID: c.ID, Name: c.Name})
	}
	var results []evaluate.Detection
	for i, im := range ds.Images {
		var kept []models.Detection
		for _, det := range perImage[i] {
			if det.Score < o.Score {
				continue
			}
			kept = append(kept, det)
			b := det.Box
			bbox := [4]float64{float64(b[0]), float64(b[1]), float64(b[2] - b[0]), float64(b[3] - b[1])}
			out.Annotations = append(out.Annotations, predictAnnotation{
				ID: int64(len(out.Annotations) + 1), ImageID: im.ID, CategoryID: int64(det.Class + 1), Label: names[det.Class],
				BBox: bbox, Area: bbox[2] * bbox[3], Score: float64(det.Score),
			})
			results = append(results, evaluate.Detection{ImageID: im.ID, CategoryID: int64(det.Class + 1), BBox: bbox, Score: float64(det.Score)})
		}
		drawn, err := predictDraw(im.Path, o.Out, kept, names)
		if err != nil {
			return err
		}
		out.Images = append(out.Images, predictImage{ID: im.ID, FileName: im.Path, Width: im.Width, Height: im.Height, Drawn: drawn})
		fmt.Fprintf(stdout, "%s: %d detections → %s\n", im.Path, len(kept), drawn)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	if err := predictWriteAtomic(filepath.Join(o.Out, "predictions.json"), append(data, '\n')); err != nil {
		return err
	}
	if err := evaluate.WriteResults(filepath.Join(o.Out, "results.json"), results); err != nil {
		return err
	}
	if o.JSON {
		_, err := stdout.Write(append(data, '\n'))
		return err
	}
	return nil
}

// imageSize reads the dimensions from the file header.
func predictImageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("predict: %w", err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("predict: %s is not a JPEG or PNG image: %w", path, err)
	}
	if format != "jpeg" && format != "png" {
		return 0, 0, fmt.Errorf("predict: %s is a %s image, want JPEG or PNG", path, format)
	}
	return cfg.Width, cfg.Height, nil
}

// predictDraw writes the image with its boxes and labels to dir, as JPEG
// for JPEG input and PNG otherwise, and returns the path.
func predictDraw(src, dir string, dets []models.Detection, names []string) (string, error) {
	im, err := dataset.DecodeFile(src)
	if err != nil {
		return "", fmt.Errorf("predict: %w", err)
	}
	canvas := image.NewRGBA(im.Bounds())
	draw.Draw(canvas, canvas.Bounds(), im, im.Bounds().Min, draw.Src)
	thick := max(1, min(canvas.Bounds().Dx(), canvas.Bounds().Dy())/200)
	// Lowest scores first so the best boxes end on top.
	for i := len(dets) - 1; i >= 0; i-- {
		det := dets[i]
		c := overlay.ClassColor(det.Class)
		r := overlay.Rect(det.Box).Intersect(canvas.Bounds())
		overlay.Box(canvas, r, c, thick)
		overlay.Label(canvas, r, fmt.Sprintf("%s %.2f", names[det.Class], det.Score), c)
	}
	stem := strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	ext := strings.ToLower(filepath.Ext(src))
	var buf bytes.Buffer
	var path string
	if ext == ".jpg" || ext == ".jpeg" {
		path = filepath.Join(dir, stem+".jpg")
		err = jpeg.Encode(&buf, canvas, &jpeg.Options{Quality: 92})
	} else {
		path = filepath.Join(dir, stem+".png")
		err = png.Encode(&buf, canvas)
	}
	if err != nil {
		return "", fmt.Errorf("predict: encode %s: %w", path, err)
	}
	return path, predictWriteAtomic(path, buf.Bytes())
}

// predictWriteAtomic writes data so readers see the old file or the whole new one.
func predictWriteAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	return nil
}
