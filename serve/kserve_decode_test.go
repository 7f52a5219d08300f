package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/infer"
)

var staticInput = []infer.TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2, 2}}}

func TestDecodeInferRequest(t *testing.T) {
	dynamic := []infer.TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 2, -1}}}
	two := []infer.TensorInfo{{Name: "a", Datatype: "FP32", Shape: []int64{2}}, {Name: "b", Datatype: "FP32", Shape: []int64{1}}}
	ok := []struct {
		name  string
		model []infer.TensorInfo
		body  string
		want  map[string][]float32
	}{
		{"flat", staticInput, `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}`, map[string][]float32{"x": {1, 2, 3, 4}}},
		// The case: [[1,2],[3,4]] once decoded as [0 0 1 2 3 4].
		{"nested row-major", staticInput, `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],[3,4]]]}]}`, map[string][]float32{"x": {1, 2, 3, 4}}},
		{"data before shape and name", staticInput, `{"inputs":[{"data":[[[1,2],[3,4]]],"datatype":"FP32","shape":[1,2,2],"name":"x"}]}`, map[string][]float32{"x": {1, 2, 3, 4}}},
		{"dynamic dims", dynamic, `{"inputs":[{"name":"x","shape":[2,2,1],"datatype":"FP32","data":[[[1],[2]],[[3],[4]]]}]}`, map[string][]float32{"x": {1, 2, 3, 4}}},
		{"exact float32", staticInput, `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[0.1,-0,3.4028234e38,1e-50]}]}`,
			map[string][]float32{"x": {0.1, float32(math.Copysign(0, -1)), math.MaxFloat32, 0}}},
		{"two inputs and parameters", two, `{"id":"r","parameters":{"p":[1,{"q":null}]},"inputs":[{"name":"b","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4},"data":[5]},{"name":"a","shape":[2],"datatype":"FP32","data":[6,7]}],"outputs":[{"name":"o","parameters":{}}]}`,
			map[string][]float32{"a": {6, 7}, "b": {5}}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeInferRequest(context.Background(), strings.NewReader(tc.body), tc.model, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Inputs) != len(tc.want) {
				t.Fatalf("%d inputs, want %d", len(req.Inputs), len(tc.want))
			}
			for _, in := range req.Inputs {
				got := in.Data.([]float32)
				want := tc.want[in.Name]
				if len(got) != len(want) {
					t.Fatalf("%s: %v, want %v", in.Name, got, want)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: %v, want %v (bit for bit)", in.Name, got, want)
					}
				}
			}
		})
	}

	bad := []struct {
		name, body string
		model      []infer.TensorInfo
		want       string
	}{
		{"extra value", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4,5]}]}`, staticInput, "more than the 4 values"},
		{"missing value", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2,3]}]}`, staticInput, "3 values, the shape holds 4"},
		{"ragged", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],[3,4,5]]]}]}`, staticInput, "dimension 2 has more than 2 entries"},
		{"too shallow", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[[1,2],[3,4]]]}`, staticInput, "dimension 1"},
		{"mixed", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],3]]}]}`, staticInput, "dimension 1"},
		{"beyond float32", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1e39,0,0,0]}]}`, staticInput, "beyond the float32 range"},
		{"string value", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":["a",0,0,0]}]}`, staticInput, "want a number"},
		{"not json number", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[Infinity,0,0,0]}]}`, staticInput, "want a number"},
		{"hex", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[0x10,0,0,0]}]}`, staticInput, `found 'x'`},
		{"wrong shape", `{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[[1]]}]}`, staticInput, `shape [1 1], the model input "x" is [1 2 2]`},
		{"huge shape", `{"inputs":[{"name":"x","shape":[100000,2,100000],"datatype":"FP32","data":[]}]}`, dynamicModel(), "more values than a request body"},
		{"wrong datatype", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"INT8","data":[1,2,3,4]}]}`, staticInput, `datatype "INT8", want FP32`},
		{"unknown input", `{"inputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}`, staticInput, `"y"): not a model input`},
		{"unknown field", `{"inputz":[]}`, staticInput, `unknown field "inputz"`},
		{"no inputs", `{"inputs":[]}`, staticInput, "no inputs"},
		{"duplicate key", `{"id":"a","id":"b","inputs":[]}`, staticInput, `"id" appears twice`},
		{"trailing", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]} {}`, staticInput, "after the end"},
		{"truncated", `{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2`, staticInput, "unexpected end"},
		{"shape after data disagrees", `{"inputs":[{"name":"x","datatype":"FP32","data":[1,2,3,4],"shape":[1,4,1]}]}`, staticInput, "put shape before data"},
		{"data before shape, dynamic model", `{"inputs":[{"name":"x","datatype":"FP32","data":[1,2,3,4],"shape":[1,2,2]}]}`, dynamicModel(), "put shape first"},
		{"no datatype", `{"inputs":[{"name":"x","shape":[1,2,2],"data":[1,2,3,4]}]}`, staticInput, "no datatype"},
		{"bad escape", `{"id":"\q","inputs":[]}`, staticInput, "invalid"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeInferRequest(context.Background(), strings.NewReader(tc.body), tc.model, 1000)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func dynamicModel() []infer.TensorInfo {
	return []infer.TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 2, -1}}}
}

// TestDecodeInferRequestMemory streams 1x3x320x320 values, nested, from a
// generator (never held as text): the decoder must keep only the tensor,
// 1.2 MB, not the 2+ MB of JSON nor a []any of boxed float64s.
func TestDecodeInferRequestMemory(t *testing.T) {
	model := []infer.TensorInfo{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 320, 320}}}
	pr, pw := io.Pipe()
	go func() {
		w := bytesWriter{pw}
		w.str(`{"inputs":[{"name":"input","shape":[1,3,320,320],"datatype":"FP32","data":[[`)
		for c := range 3 {
			w.str(map[bool]string{true: ",", false: ""}[c > 0] + "[")
			for y := range 320 {
				w.str(map[bool]string{true: ",", false: ""}[y > 0] + "[")
				for x := range 320 {
					if x > 0 {
						w.str(",")
					}
					w.str(strconv.Itoa((c + y + x) % 256))
				}
				w.str("]")
			}
			w.str("]")
		}
		w.str("]]}]}")
		pw.Close()
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, err := decodeInferRequest(context.Background(), pr, model, 5<<20)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	data := req.Inputs[0].Data.([]float32)
	if len(data) != 3*320*320 || data[0] != 0 || data[1] != 1 || data[320] != 1 || data[320*320] != 1 || data[len(data)-1] != float32((2+319+319)%256) {
		t.Fatalf("values out of row-major order: %v ... %v", data[:3], data[len(data)-1])
	}
	// Number tokens allocate a little as they are parsed; the bound is
	// the tensor (1.2 MB) plus a small multiple, far below what boxing
	// every value (~40 MB) costs.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("decoding allocated %d MB in all for a 1.2 MB tensor", got>>20)
	}
}

type bytesWriter struct{ w io.Writer }

func (b bytesWriter) str(s string) { _, _ = io.WriteString(b.w, s) }

func TestDecodeInferRequestHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	model := []infer.TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{1, 20000}}}
	var b strings.Builder
	b.WriteString(`{"inputs":[{"name":"x","shape":[1,20000],"datatype":"FP32","data":[`)
	for i := range 20000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("1")
	}
	b.WriteString("]}]}")
	if _, err := decodeInferRequest(ctx, strings.NewReader(b.String()), model, 1<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want the context's", err)
	}
}

// readSeeds loads testdata files as fuzz seeds.
func readSeeds(f *testing.F, pattern string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds at testdata/%s (%v)", pattern, err)
	}
	var seeds [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// FuzzDecodeInferRequest checks the streaming decoder against encoding/json:
// whatever it accepts is valid JSON whose data arrays hold, in row-major
// order, exactly the values it returns (each the nearest float32).
func FuzzDecodeInferRequest(f *testing.F) {
	for _, s := range readSeeds(f, "kserve/*.json") {
		f.Add(s)
	}
	model := []infer.TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2, -1}}, {Name: "y", Datatype: "FP32", Shape: []int64{-1}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeInferRequest(context.Background(), bytes.NewReader(body), model, 4096)
		if err != nil {
			return
		}
		var ref struct {
			Inputs []struct {
				Name  string          `json:"name"`
				Shape []int64         `json:"shape"`
				Data  json.RawMessage `json:"data"`
			} `json:"inputs"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
		}
		for _, in := range req.Inputs {
			i := slices.IndexFunc(ref.Inputs, func(r struct {
				Name  string          `json:"name"`
				Shape []int64         `json:"shape"`
				Data  json.RawMessage `json:"data"`
			}) bool {
				return r.Name == in.Name
			})
			if i < 0 {
				t.Fatalf("decoded input %q that the body does not hold", in.Name)
			}
			dec := json.NewDecoder(bytes.NewReader(ref.Inputs[i].Data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			var flat []float32
			var walk func(any)
			walk = func(v any) {
				switch x := v.(type) {
				case []any:
					for _, e := range x {
						walk(e)
					}
				case json.Number:
					f, err := strconv.ParseFloat(string(x), 32)
					if err != nil {
						t.Fatalf("accepted %s: %v", x, err)
					}
					flat = append(flat, float32(f))
				default:
					t.Fatalf("accepted a %T in data", v)
				}
			}
			walk(v)
			got := in.Data.([]float32)
			if len(got) != len(flat) {
				t.Fatalf("input %q: %d values decoded, the body holds %d", in.Name, len(got), len(flat))
			}
			for k := range got {
				if math.Float32bits(got[k]) != math.Float32bits(flat[k]) {
					t.Fatalf("input %q value %d: %v, encoding/json says %v", in.Name, k, got[k], flat[k])
				}
			}
			n := int64(1)
			for _, d := range in.Shape {
				n *= d
			}
			if n != int64(len(got)) {
				t.Fatalf("input %q: shape %v holds %d values, decoded %d", in.Name, in.Shape, n, len(got))
			}
		}
	})
}

// FuzzReadMultipartImage: the image returned is the body of the one part
// named "image", as mime/multipart reads it; errors are 400s or the body
// limit.
func FuzzReadMultipartImage(f *testing.F) {
	for _, s := range readSeeds(f, "multipart/*.txt") {
		boundary, body, _ := bytes.Cut(s, []byte("\r\n"))
		f.Add(string(boundary), body)
	}
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		img, err := readMultipartImage(bytes.NewReader(body), boundary)
		if err != nil {
			if !strings.Contains(err.Error(), "code=400") {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		var images [][]byte
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			data, _ := io.ReadAll(p)
			if p.FormName() == "image" {
				images = append(images, data)
			}
		}
		if len(images) != 1 || !bytes.Equal(images[0], img) {
			t.Fatalf("returned %q; the body has %d image parts", img, len(images))
		}
	})
}

func TestReadMultipartImage(t *testing.T) {
	for name, want := range map[string]string{
		"one_image.txt":  "", // JPEGDATA
		"two_images.txt": `field "image" appears twice`,
		"no_image.txt":   `field "image" missing`,
		"truncated.txt":  "multipart body",
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "multipart", name))
			if err != nil {
				t.Fatal(err)
			}
			boundary, body, _ := bytes.Cut(raw, []byte("\r\n"))
			img, err := readMultipartImage(bytes.NewReader(body), string(boundary))
			if want == "" {
				if err != nil || string(img) != "JPEGDATA" {
					t.Fatalf("got %q, %v", img, err)
				}
				return
			}
			if err == nil || !strings.Contains(fmt.Sprint(err), want) {
				t.Fatalf("error %v, want %q", err, want)
			}
		})
	}
}
