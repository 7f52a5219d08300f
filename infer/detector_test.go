package infer

import (
	"context"
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gidedge/gidedge/geom"
	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/onnxpb"
)

func openShared(t testing.TB, name string, opts Options) *Detector {
	t.Helper()
	d, err := Open(filepath.Join(sharedtest.Dir(t), "models", name), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func cocoImage(t testing.TB, id string) image.Image {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "data", "coco128", "images", id+".jpg"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(data)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// xywh converts a COCO annotation box to corners.
func xywh(x, y, w, h float32) [4]float32 { return [4]float32{x, y, x + w, y + h} }

func TestNanoDetFindsCOCOObjects(t *testing.T) {
	d := openShared(t, "nanodet_m_320.onnx", Options{})
	if got := d.Describe().Adapter; got != "nanodet" {
		t.Fatalf("adapter = %q, want nanodet", got)
	}
	// Ground truth from coco128's instances.json; NanoDet-m must find each
	// object with the right label and a box overlapping it well.
	tests := []struct {
		image string
		label string
		box   [4]float32
	}{
		{"000000000036", "person", xywh(167.6, 162.9, 310.6, 465.2)},
		{"000000000036", "umbrella", xywh(0.0, 50.1, 457.7, 430.4)},
		{"000000000034", "zebra", xywh(1.0, 20.1, 441.2, 379.1)},
		{"000000000025", "giraffe", xywh(385.5, 60.0, 215.0, 297.2)},
	}
	for _, tc := range tests {
		t.Run(tc.image+"/"+tc.label, func(t *testing.T) {
			res, err := d.Detect(context.Background(), cocoImage(t, tc.image), Params{})
			if err != nil {
				t.Fatal(err)
			}
			best := float32(0)
			for _, det := range res.Detections {
				if det.Label == tc.label {
					best = max(best, geom.IoU(det.Box, tc.box))
				}
			}
			if best < 0.7 {
				t.Fatalf("best %s IoU = %.2f, want >= 0.7; detections %+v", tc.label, best, res.Detections)
			}
		})
	}
}

func TestNanoDetParamsAndPackedFrames(t *testing.T) {
	d := openShared(t, "nanodet_m_320.onnx", Options{})
	img := cocoImage(t, "000000000009") // a table of bowls: many detections at the default 0.35
	def, err := d.Detect(context.Background(), img, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Detections) < 4 || def.Width != 640 || def.Height != 480 {
		t.Fatalf("default: %d detections on %dx%d, want >= 4 on 640x480", len(def.Detections), def.Width, def.Height)
	}
	for i := 1; i < len(def.Detections); i++ {
		if def.Detections[i].Score > def.Detections[i-1].Score {
			t.Fatalf("detections not sorted by score at %d", i)
		}
	}
	strict, err := d.Detect(context.Background(), img, Params{ScoreThreshold: 0.6})
	if err != nil {
		t.Fatal(err)
	}
	for _, det := range strict.Detections {
		if det.Score <= 0.6 {
			t.Fatalf("score %v kept with threshold 0.6", det.Score)
		}
	}
	if len(strict.Detections) >= len(def.Detections) {
		t.Fatalf("threshold 0.6 kept %d, default kept %d", len(strict.Detections), len(def.Detections))
	}
	one, err := d.Detect(context.Background(), img, Params{MaxDetections: 1})
	if err != nil || len(one.Detections) != 1 || one.Detections[0] != def.Detections[0] {
		t.Fatalf("max 1: %v %+v, want the top detection %+v", err, one, def.Detections[0])
	}
	if _, err := d.Detect(context.Background(), img, Params{ScoreThreshold: 2}); err == nil || !strings.Contains(err.Error(), "score_threshold") {
		t.Fatalf("threshold 2: err = %v", err)
	}

	// The same image as a packed BGR frame (the camera path) gives the same result.
	b := img.Bounds()
	bgr := make([]byte, 3*b.Dx()*b.Dy())
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			i := 3 * (y*b.Dx() + x)
			bgr[i], bgr[i+1], bgr[i+2] = c.B, c.G, c.R
		}
	}
	packed, err := d.DetectPacked(context.Background(), Packed{Pix: bgr, Width: b.Dx(), Height: b.Dy(), Stride: 3 * b.Dx(), BytesPerPixel: 3, Order: OrderBGR}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(packed.Detections) != len(def.Detections) || packed.Detections[0].Label != def.Detections[0].Label {
		t.Fatalf("packed frame: %+v, image: %+v", packed.Detections, def.Detections)
	}
}

func TestUltraFaceFindsFace(t *testing.T) {
	d := openShared(t, "ultraface_rfb_320.onnx", Options{})
	desc := d.Describe()
	if desc.Adapter != "ultraface" || desc.Input.ChannelOrder != OrderRGB || desc.Input.Resize != ResizeStretch {
		t.Fatalf("description = %+v", desc)
	}
	// 000000000036: a woman under an umbrella; her face is in the top part of
	// the annotated person box (167.6, 162.9, 478.2, 628.1).
	res, err := d.Detect(context.Background(), cocoImage(t, "000000000036"), Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Detections) != 1 {
		t.Fatalf("got %d faces, want 1: %+v", len(res.Detections), res.Detections)
	}
	f := res.Detections[0]
	if f.Label != "face" || f.Score < 0.9 || f.Box[0] < 167 || f.Box[2] > 479 || f.Box[1] < 162 || f.Box[3] > 162+465.2/2 {
		t.Fatalf("face %+v is not in the upper half of the person box", f)
	}
	// A blank image has no face.
	blank, err := d.Detect(context.Background(), image.NewRGBA(image.Rect(0, 0, 320, 240)), Params{})
	if err != nil || len(blank.Detections) != 0 {
		t.Fatalf("blank image: %v %+v", err, blank)
	}
}

func TestDetectorConcurrentAndClose(t *testing.T) {
	d, err := Open(filepath.Join(sharedtest.Dir(t), "models", "ultraface_rfb_320.onnx"), Options{Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	img := cocoImage(t, "000000000036")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			res, err := d.Detect(context.Background(), img, Params{})
			if err == nil && len(res.Detections) != 1 {
				err = errors.New("concurrent call found no face")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Detect(ctx, img, Params{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v", err)
	}
	d.Close()
	if _, err := d.Detect(context.Background(), img, Params{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestRunTensors(t *testing.T) {
	d := openShared(t, "ultraface_rfb_320.onnx", Options{})
	in := make([]float32, 3*240*320)
	out, err := d.RunTensors(context.Background(), []RawTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 240, 320}, Data: in}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Name != "scores" || out[0].Datatype != "FP32" || len(out[0].Data.([]float32)) != 4420*2 {
		t.Fatalf("outputs = %v %v %v", out[0].Name, out[0].Shape, out[0].Datatype)
	}
	bad := []struct {
		name string
		in   []RawTensor
		want string
	}{
		{"missing", nil, `input "input" missing`},
		{"wrong shape", []RawTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 240, 321}, Data: in}}, "want [1 3 240 320]"},
		{"wrong count", []RawTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 240, 320}, Data: in[:5]}}, "has 5 values"},
		{"wrong type", []RawTensor{{Name: "input", Datatype: "INT64", Shape: []int64{1, 3, 240, 320}, Data: []int64{1}}}, "want FP32"},
		{"extra", []RawTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 240, 320}, Data: in}, {Name: "x", Datatype: "FP32"}}, `"x" is not a model input`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.RunTensors(context.Background(), tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestProviderUnavailable(t *testing.T) {
	model := filepath.Join(sharedtest.Dir(t), "models", "ultraface_rfb_320.onnx")
	for _, p := range []string{ProviderCUDA, ProviderTensorRT} {
		t.Run(p, func(t *testing.T) {
			d, err := Open(model, Options{Session: SessionOptions{Provider: p}})
			if err == nil {
				d.Close()
				t.Skipf("this ONNX Runtime library has the %s provider", p)
			}
			if !errors.Is(err, ErrProviderUnavailable) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--provider cpu") {
				t.Fatalf("err = %v, want ErrProviderUnavailable naming %s", err, p)
			}
			// The npm library has the provider bridge but no provider
			// libraries beside it: the error must pass on ONNX Runtime's
			// reason and name the library to put there.
			for _, want := range []string{"Failed to load library", "libonnxruntime_providers_" + p + ".so"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to mention %q", err, want)
				}
			}
		})
	}
	if _, err := Open(model, Options{Session: SessionOptions{Provider: "tpu"}}); err == nil || !strings.Contains(err.Error(), `provider "tpu"`) {
		t.Fatalf("unknown provider: err = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notONNX := filepath.Join(dir, "x.onnx")
	if err := os.WriteFile(notONNX, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, adapter, want string
	}{
		{"missing file", filepath.Join(dir, "none.onnx"), "", "no such file"},
		{"not onnx", notONNX, "", "x.onnx"},
		{"forced wrong family", filepath.Join(sharedtest.Dir(t), "models", "ultraface_rfb_320.onnx"), "nanodet", "is not a nanodet model"},
		{"unknown adapter", filepath.Join(sharedtest.Dir(t), "models", "ultraface_rfb_320.onnx"), "yolo", `adapter "yolo" unknown`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, Options{Adapter: tc.adapter})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "infer: ") {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// writeDecodedModel writes a tiny gidedge-style ONNX model whose boxes and
// scores outputs are the given constants (plus 0 x the input's mean, so the
// input is consumed), with info in its metadata.
func writeDecodedModel(t *testing.T, path string, info ModelInfo, boxes, scores []float32) {
	t.Helper()
	r := int64(len(boxes) / 4)
	c := int64(len(scores)) / r
	tensorType := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape}}}}
	}
	init := func(name string, data []float32, dims ...int64) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: data}
	}
	node := func(op string, out string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: op, Input: in, Output: []string{out}, Name: out}
	}
	h, w := int64(info.Input.Height), int64(info.Input.Width)
	meta, err := info.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}},
		Graph: &onnxpb.GraphProto{
			Name:   "decoded",
			Input:  []*onnxpb.ValueInfoProto{tensorType("images", 1, 3, h, w)},
			Output: []*onnxpb.ValueInfoProto{tensorType(info.Head.BoxesOutput, 1, r, 4), tensorType(info.Head.ScoresOutput, 1, r, c)},
			Initializer: []*onnxpb.TensorProto{
				init("box_const", boxes, 1, r, 4), init("score_const", scores, 1, r, c), init("zero", []float32{0}),
			},
			Node: []*onnxpb.NodeProto{
				func() *onnxpb.NodeProto {
					n := node("ReduceMean", "mean", "images")
					n.Attribute = []*onnxpb.AttributeProto{{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 0}}
					return n
				}(),
				node("Mul", "nothing", "mean", "zero"),
				node("Add", info.Head.BoxesOutput, "box_const", "nothing"),
				node("Add", info.Head.ScoresOutput, "score_const", "nothing"),
			},
		},
		MetadataProps: []*onnxpb.StringStringEntryProto{{Key: MetadataKey, Value: meta[MetadataKey]}},
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodedInfo() ModelInfo {
	return ModelInfo{
		GidedgeVersion: "test",
		ClassNames:     []string{"a", "b"},
		Input: Preprocess{Width: 32, Height: 32, Layout: LayoutNCHW, ChannelOrder: OrderRGB, Resize: ResizeStretch,
			PixelScale: 1.0 / 255, Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}},
		Head: HeadInfo{Family: "fcos", Outputs: OutputsDecoded, Strides: []int{8, 16},
			ScoreThreshold: 0.3, NMSIoU: 0.5, MaxDetections: 10, BoxesOutput: "boxes", ScoresOutput: "scores"},
	}
}

func TestGidedgeDecodedModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	boxes := []float32{
		4, 4, 12, 12, // A: class a 0.9
		5, 5, 13, 13, // B: overlaps A, class a 0.8 -> suppressed
		5, 5, 13, 13, // C: class b 0.7 -> kept (other class)
		20, 20, 30, 30, // D: 0.2 -> under the threshold
	}
	scores := []float32{0.9, 0.1, 0.8, 0.05, 0.1, 0.7, 0.2, 0.1}
	writeDecodedModel(t, path, decodedInfo(), boxes, scores)
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Describe().Adapter != "gidedge" || d.Describe().Defaults.ScoreThreshold != 0.3 {
		t.Fatalf("description = %+v", d.Describe())
	}
	res, err := d.Detect(context.Background(), image.NewRGBA(image.Rect(0, 0, 64, 64)), Params{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Detection{
		{Box: [4]float32{8, 8, 24, 24}, Score: 0.9, Class: 0, Label: "a"},
		{Box: [4]float32{10, 10, 26, 26}, Score: 0.7, Class: 1, Label: "b"},
	}
	if len(res.Detections) != len(want) {
		t.Fatalf("detections = %+v, want %+v", res.Detections, want)
	}
	for i := range want {
		if res.Detections[i] != want[i] {
			t.Fatalf("detection %d = %+v, want %+v", i, res.Detections[i], want[i])
		}
	}
}

func TestGidedgeModelErrors(t *testing.T) {
	dir := t.TempDir()
	boxes := []float32{0, 0, 1, 1}
	tests := []struct {
		name   string
		edit   func(*ModelInfo)
		scores []float32
		want   string
	}{
		{"raw head", func(m *ModelInfo) { m.Head.Outputs = OutputsRaw }, []float32{0.5, 0.5}, "decoded outputs"},
		{"class count", func(m *ModelInfo) { m.ClassNames = []string{"a", "b", "c"} }, []float32{0.5, 0.5}, "for 3 class names"},
		{"input size", func(m *ModelInfo) { m.Input.Width = 64 }, []float32{0.5, 0.5}, "metadata says 64x32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good := decodedInfo()
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".onnx")
			writeDecodedModel(t, path, good, boxes, tc.scores)
			// Rewrite the metadata with the edited info but keep the graph.
			bad := decodedInfo()
			tc.edit(&bad)
			data, _ := os.ReadFile(path)
			m := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(data, m); err != nil {
				t.Fatal(err)
			}
			meta, err := bad.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			m.MetadataProps[0].Value = meta[MetadataKey]
			data, _ = proto.Marshal(m)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Open(path, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "gidedge adapter") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNMS(t *testing.T) {
	dets := []Detection{
		{Box: [4]float32{0, 0, 10, 10}, Score: 0.5, Class: 0},
		{Box: [4]float32{1, 1, 10, 10}, Score: 0.9, Class: 0},
		{Box: [4]float32{0, 0, 10, 10}, Score: 0.8, Class: 1},
		{Box: [4]float32{50, 50, 60, 60}, Score: 0.4, Class: 0},
	}
	got := NMS(dets, 0.5, 0)
	if len(got) != 3 || got[0].Score != 0.9 || got[1].Score != 0.8 || got[2].Score != 0.4 {
		t.Fatalf("NMS = %+v", got)
	}
	if got := NMS([]Detection{{Score: 1, Box: [4]float32{0, 0, 1, 1}}, {Score: 0.5, Box: [4]float32{5, 5, 6, 6}}}, 0.5, 1); len(got) != 1 {
		t.Fatalf("max 1 kept %d", len(got))
	}
}
