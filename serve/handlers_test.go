package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectRoute(t *testing.T) {
	s := newTestServer(t, Config{MaxBodyBytes: 1 << 20})
	defer s.Close()
	jpg := personJPEG(t)

	var pngBuf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 50, 40))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("note", "ignored")
	fw, _ := mw.CreateFormFile("image", "person.jpg")
	_, _ = fw.Write(jpg)
	_ = mw.Close()
	var twoImages bytes.Buffer
	mw4 := multipart.NewWriter(&twoImages)
	for range 2 {
		fw, _ := mw4.CreateFormFile("image", "person.jpg")
		_, _ = fw.Write(jpg)
	}
	_ = mw4.Close()
	var noField bytes.Buffer
	mw2 := multipart.NewWriter(&noField)
	_ = mw2.WriteField("picture", "x")
	_ = mw2.Close()

	t.Run("raw jpeg", func(t *testing.T) {
		rec := do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var r DetectResponse
		decodeJSON(t, rec.Body.Bytes(), &r)
		if r.Model != "nanodet_m_320" || r.Width != 481 || r.Height != 640 || len(r.Detections) == 0 {
			t.Fatalf("response %+v", r)
		}
		top := r.Detections[0]
		// Ground truth person box in xywh: 167.6, 162.9, 310.6, 465.2.
		if top.Category != "person" || top.CategoryID != 0 || top.BBox[0] < 150 || top.BBox[0] > 200 || top.BBox[2] < 260 || top.BBox[2] > 340 {
			t.Fatalf("top detection %+v, want the person at x≈168 w≈311", top)
		}
		if r.TimingMS.Infer <= 0 || r.TimingMS.Decode <= 0 {
			t.Fatalf("timing %+v", r.TimingMS)
		}
	})
	t.Run("multipart", func(t *testing.T) {
		rec := do(t, s, http.MethodPost, "/v1/detect?score_threshold=0.7&max_detections=1", mw.FormDataContentType(), form.Bytes())
		var r DetectResponse
		decodeJSON(t, rec.Body.Bytes(), &r)
		if rec.Code != http.StatusOK || len(r.Detections) != 1 || r.Detections[0].Score <= 0.7 {
			t.Fatalf("status %d response %+v", rec.Code, r)
		}
	})
	t.Run("png", func(t *testing.T) {
		rec := do(t, s, http.MethodPost, "/v1/detect", "image/png", pngBuf.Bytes())
		var r DetectResponse
		decodeJSON(t, rec.Body.Bytes(), &r)
		if rec.Code != http.StatusOK || r.Width != 50 || r.Height != 40 || r.Detections == nil {
			t.Fatalf("status %d response %s", rec.Code, rec.Body)
		}
	})

	big := make([]byte, 1<<20+1)
	copy(big, jpg)
	var bigForm bytes.Buffer
	mw3 := multipart.NewWriter(&bigForm)
	fw3, _ := mw3.CreateFormFile("image", "big.jpg")
	_, _ = fw3.Write(big)
	_ = mw3.Close()
	bad := []struct {
		name, target, contentType string
		body                      []byte
		code                      int
		want                      string
	}{
		{"empty body", "/v1/detect", "image/jpeg", nil, 400, "empty image"},
		{"not an image", "/v1/detect", "image/jpeg", []byte("hello, world"), 400, "unknown image format"},
		{"truncated jpeg", "/v1/detect", "image/jpeg", jpg[:200], 400, "corrupt image"},
		{"wrong content type", "/v1/detect", "text/plain", jpg, 415, `"text/plain" not supported`},
		{"no content type", "/v1/detect", "", jpg, 415, "Content-Type missing"},
		{"too large", "/v1/detect", "image/jpeg", big, 413, "larger than 1048576 bytes"},
		{"too large multipart", "/v1/detect", mw3.FormDataContentType(), bigForm.Bytes(), 413, "larger than 1048576 bytes"},
		{"bad threshold", "/v1/detect?score_threshold=2", "image/jpeg", jpg, 400, "score_threshold"},
		{"bad iou", "/v1/detect?iou_threshold=x", "image/jpeg", jpg, 400, "iou_threshold"},
		{"nan threshold", "/v1/detect?score_threshold=NaN", "image/jpeg", jpg, 400, "score_threshold"},
		{"bad max", "/v1/detect?max_detections=0", "image/jpeg", jpg, 400, "max_detections"},
		{"multipart without image", "/v1/detect", mw2.FormDataContentType(), noField.Bytes(), 400, `field "image" missing`},
		{"multipart without boundary", "/v1/detect", "multipart/form-data", form.Bytes(), 400, "boundary"},
		{"multipart with two images", "/v1/detect", mw4.FormDataContentType(), twoImages.Bytes(), 400, `field "image" appears twice`},
		{"image above the pixel limit", "/v1/detect", "image/png", hugePNG(t), 413, "limit is 26.2 megapixels"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			msg := errorBody(t, do(t, s, http.MethodPost, tc.target, tc.contentType, tc.body), tc.code)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q, want it to contain %q", msg, tc.want)
			}
		})
	}
	// Without a Content-Length the limit is enforced while reading.
	for name, body := range map[string][]byte{"image/jpeg": big, mw3.FormDataContentType(): bigForm.Bytes()} {
		t.Run("streamed too large "+strings.SplitN(name, ";", 2)[0], func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/detect", bytes.NewReader(body))
			req.ContentLength = -1
			req.Header.Set("Content-Type", name)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if msg := errorBody(t, rec, 413); !strings.Contains(msg, "larger than 1048576") {
				t.Fatal(msg)
			}
		})
	}
	t.Run("get not allowed", func(t *testing.T) {
		msg := errorBody(t, do(t, s, http.MethodGet, "/v1/detect", "", nil), 405)
		if !strings.Contains(msg, "GET not allowed") {
			t.Fatal(msg)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		msg := errorBody(t, do(t, s, http.MethodGet, "/v9/nothing", "", nil), 404)
		if !strings.Contains(msg, "/v9/nothing") {
			t.Fatal(msg)
		}
	})
}

// hugePNG is a small file whose header says 8192x8192 (a PNG of one flat
// colour compresses to little): the limit must refuse it from the header.
func hugePNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 8192, 8192))
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReloadFailureIsA500WithTheReason(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	data, err := os.ReadFile(ultrafacePath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{ModelPath: model, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	if err := os.WriteFile(model, []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := errorBody(t, do(t, s, http.MethodPost, "/v2/repository/models/m/load", "", nil), 500)
	if !strings.Contains(msg, "serve: reload model") || !strings.Contains(msg, model) {
		t.Fatalf("500 without the reason: %q", msg)
	}
	// The old model still serves.
	if rec := do(t, s, http.MethodGet, "/v2/models/m/ready", "", nil); rec.Code != 200 {
		t.Fatalf("after a failed reload: %d", rec.Code)
	}
}

func TestTimeoutGives504(t *testing.T) {
	s := newTestServer(t, Config{RequestTimeout: 1}) // 1ns: expired before the run
	defer s.Close()
	msg := errorBody(t, do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", personJPEG(t)), 504)
	if !strings.Contains(msg, "deadline exceeded") {
		t.Fatal(msg)
	}
}

func TestBearerToken(t *testing.T) {
	s := newTestServer(t, Config{Token: "s3cret"})
	defer s.Close()
	jpg := personJPEG(t)
	errorBody(t, do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg), 401)
	rec := do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg, "Authorization", "Bearer wrong")
	errorBody(t, rec, 401)
	if rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	errorBody(t, do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg, "Authorization", "Bearer s3cret-and-more"), 401)
	errorBody(t, do(t, s, http.MethodGet, "/metrics", "", nil), 401)
	if rec := do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg, "Authorization", "Bearer s3cret"); rec.Code != 200 {
		t.Fatalf("right token: %d %s", rec.Code, rec.Body)
	}
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	for _, scheme := range []string{"bearer", "BEARER", "Bearer "} {
		if rec := do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg, "Authorization", scheme+" s3cret"); rec.Code != 200 {
			t.Fatalf("scheme %q: %d %s", scheme, rec.Code, rec.Body)
		}
	}
	errorBody(t, do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", jpg, "Authorization", "Basic s3cret"), 401)
	if rec := do(t, s, http.MethodGet, "/?access_token=s3cret", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"s3cret"`) {
		t.Fatalf("viewer with query token: %d", rec.Code)
	}
	// The stream takes the query token too (no camera here: 404 once past auth).
	errorBody(t, do(t, s, http.MethodGet, "/v1/stream.mjpeg?access_token=s3cret", "", nil), 404)
	errorBody(t, do(t, s, http.MethodGet, "/v1/stream.mjpeg?access_token=wrong", "", nil), 401)
	// Other routes refuse it, and no route takes it beside a header.
	if msg := errorBody(t, do(t, s, http.MethodPost, "/v1/detect?access_token=s3cret", "image/jpeg", jpg), 401); !strings.Contains(msg, "only by the viewer") {
		t.Fatal(msg)
	}
	errorBody(t, do(t, s, http.MethodGet, "/v1/camera?access_token=s3cret", "", nil), 401)
	if msg := errorBody(t, do(t, s, http.MethodGet, "/?access_token=s3cret", "", nil, "Authorization", "Basic x"), 400); !strings.Contains(msg, "both") {
		t.Fatal(msg)
	}
	errorBody(t, do(t, s, http.MethodGet, "/?access_token=s3cret", "", nil, "Authorization", "Bearer s3cret"), 400)
	for _, probe := range []string{"/healthz", "/v2/health/live", "/v2/health/ready"} {
		if rec := do(t, s, http.MethodGet, probe, "", nil); rec.Code != 200 {
			t.Fatalf("%s without token: %d", probe, rec.Code)
		}
	}
}

func TestKServeRoutes(t *testing.T) {
	s := newTestServer(t, Config{ModelPath: ultrafacePath(t)})
	defer s.Close()
	var meta map[string]any
	rec := do(t, s, http.MethodGet, "/v2", "", nil)
	decodeJSON(t, rec.Body.Bytes(), &meta)
	if rec.Code != 200 || meta["name"] != "gidedge" {
		t.Fatalf("/v2: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/ultraface_rfb_320/ready", "/healthz"} {
		if rec := do(t, s, http.MethodGet, path, "", nil); rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	var mm modelMetadata
	rec = do(t, s, http.MethodGet, "/v2/models/ultraface_rfb_320", "", nil)
	decodeJSON(t, rec.Body.Bytes(), &mm)
	if mm.Platform != "onnxruntime_onnx" || len(mm.Inputs) != 1 || mm.Inputs[0].Name != "input" || fmt.Sprint(mm.Inputs[0].Shape) != "[1 3 240 320]" {
		t.Fatalf("metadata %+v", mm)
	}
	errorBody(t, do(t, s, http.MethodGet, "/v2/models/other", "", nil), 404)
	errorBody(t, do(t, s, http.MethodGet, "/v2/models/other/ready", "", nil), 404)

	// A mid-grey input: the model runs and returns both outputs.
	data := make([]float32, 3*240*320)
	req := map[string]any{"id": "r1", "inputs": []map[string]any{{"name": "input", "shape": []int{1, 3, 240, 320}, "datatype": "FP32", "data": data}},
		"outputs": []map[string]string{{"name": "scores"}}}
	body, _ := json.Marshal(req)
	rec = do(t, s, http.MethodPost, "/v2/models/ultraface_rfb_320/infer", "application/json", body)
	if rec.Code != 200 {
		t.Fatalf("infer: %d %s", rec.Code, rec.Body)
	}
	var resp struct {
		ModelName string `json:"model_name"`
		ID        string `json:"id"`
		Outputs   []struct {
			Name     string    `json:"name"`
			Shape    []int64   `json:"shape"`
			Datatype string    `json:"datatype"`
			Data     []float32 `json:"data"`
		} `json:"outputs"`
	}
	decodeJSON(t, rec.Body.Bytes(), &resp)
	if resp.ModelName != "ultraface_rfb_320" || resp.ID != "r1" || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "scores" ||
		len(resp.Outputs[0].Data) != 4420*2 || resp.Outputs[0].Datatype != "FP32" {
		t.Fatalf("infer response: model %q id %q, %d outputs", resp.ModelName, resp.ID, len(resp.Outputs))
	}
	// Softmax outputs: each pair sums to 1.
	if d := resp.Outputs[0].Data; d[0]+d[1] < 0.99 || d[0]+d[1] > 1.01 {
		t.Fatalf("scores %v %v do not sum to 1", d[0], d[1])
	}

	nested := `{"inputs":[{"name":"input","shape":[1,1],"datatype":"FP32","data":[[1]]}]}`
	bad := []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"not json", "/v2/models/ultraface_rfb_320/infer", "{", 400, "invalid JSON at byte 1"},
		{"unknown field", "/v2/models/ultraface_rfb_320/infer", `{"inputz":[]}`, 400, "unknown field"},
		{"no inputs", "/v2/models/ultraface_rfb_320/infer", `{"inputs":[]}`, 400, "no inputs"},
		{"wrong datatype", "/v2/models/ultraface_rfb_320/infer", `{"inputs":[{"name":"input","shape":[1],"datatype":"INT8","data":[1]}]}`, 400, `datatype "INT8"`},
		{"wrong shape", "/v2/models/ultraface_rfb_320/infer", nested, 400, `shape [1 1], the model input "input" is [1 3 240 320]`},
		{"bad data", "/v2/models/ultraface_rfb_320/infer", `{"inputs":[{"name":"input","shape":[1,1,1,1],"datatype":"FP32","data":["a"]}]}`, 400, "shape [1 1 1 1]"},
		{"string value", "/v2/models/ultraface_rfb_320/infer", `{"inputs":[{"data":["a"]}]}`, 400, "want a number"},
		{"extra value", "/v2/models/ultraface_rfb_320/infer", strings.Replace(string(body), `"data":[0,`, `"data":[0,0,`, 1), 400, "more than the 230400 values"},
		{"beyond float32", "/v2/models/ultraface_rfb_320/infer", strings.Replace(string(body), `"data":[0,`, `"data":[1e39,`, 1), 400, "beyond the float32 range"},
		{"wrong name", "/v2/models/ultraface_rfb_320/infer", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, 400, `not a model input (model inputs: input FP32[1 3 240 320])`},
		{"unknown model", "/v2/models/yolo/infer", `{"inputs":[]}`, 404, `model "yolo" not found`},
		{"unknown output", "/v2/models/ultraface_rfb_320/infer", strings.Replace(string(body), `"name":"scores"`, `"name":"logits"`, 1), 400, `output "logits"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			msg := errorBody(t, do(t, s, http.MethodPost, tc.path, "application/json", []byte(tc.body)), tc.code)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q, want %q", msg, tc.want)
			}
		})
	}

	// The same tensor nested as its shape [1,3,240,320] gives the same
	// outputs, bit for bit, as the flat request.
	grey := make([]float32, 3*240*320)
	for i := range grey {
		grey[i] = float32(i%251) / 251
	}
	flatReq, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "input", "shape": []int{1, 3, 240, 320}, "datatype": "FP32", "data": grey}}})
	rows := make([][][][]float32, 1)
	rows[0] = make([][][]float32, 3)
	for c := range 3 {
		rows[0][c] = make([][]float32, 240)
		for y := range 240 {
			rows[0][c][y] = grey[(c*240+y)*320 : (c*240+y+1)*320]
		}
	}
	nestedReq, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "input", "shape": []int{1, 3, 240, 320}, "datatype": "FP32", "data": rows}}})
	flatRec := do(t, s, http.MethodPost, "/v2/models/ultraface_rfb_320/infer", "application/json", flatReq)
	nestedRec := do(t, s, http.MethodPost, "/v2/models/ultraface_rfb_320/infer", "application/json", nestedReq)
	if flatRec.Code != 200 || nestedRec.Code != 200 || flatRec.Body.String() != nestedRec.Body.String() {
		t.Fatalf("flat %d and nested %d requests differ: %.200s / %.200s", flatRec.Code, nestedRec.Code, flatRec.Body, nestedRec.Body)
	}

	rec = do(t, s, http.MethodPost, "/v2/repository/models/ultraface_rfb_320/load", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"loaded":true`) {
		t.Fatalf("load: %d %s", rec.Code, rec.Body)
	}
	errorBody(t, do(t, s, http.MethodPost, "/v2/repository/models/other/load", "", nil), 404)
}

func TestMetricsAndPages(t *testing.T) {
	s := newTestServer(t, Config{})
	defer s.Close()
	do(t, s, http.MethodPost, "/v1/detect", "image/jpeg", personJPEG(t))
	do(t, s, http.MethodPost, "/v1/detect", "text/plain", nil)
	rec := do(t, s, http.MethodGet, "/metrics", "", nil)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`gidedge_http_requests_total{code="200",method="POST",route="/v1/detect"} 1`,
		`gidedge_http_requests_total{code="415",method="POST",route="/v1/detect"} 1`,
		`gidedge_http_request_duration_seconds_bucket{route="/v1/detect",le=`,
		`gidedge_stage_duration_seconds_count{stage="infer"} 1`,
		`gidedge_stage_duration_seconds_count{stage="decode"} 1`,
		`gidedge_stage_duration_seconds_count{stage="preprocess"} 1`,
		`gidedge_stage_duration_seconds_count{stage="postprocess"} 1`,
		`gidedge_http_in_flight_requests 1`, // the /metrics request itself
		`gidedge_model_info{adapter="nanodet",model="nanodet_m_320",provider="cpu",sessions="1"} 1`,
		`process_resident_memory_bytes`,
		`go_memstats_heap_inuse_bytes`,
		`gidedge_memory_limit_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var h healthz
	rec = do(t, s, http.MethodGet, "/healthz", "", nil)
	decodeJSON(t, rec.Body.Bytes(), &h)
	if h.Status != "ok" || h.Model != "nanodet_m_320" || h.Camera != nil {
		t.Fatalf("healthz %+v", h)
	}
	rec = do(t, s, http.MethodGet, "/", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "No camera configured") || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("viewer without camera: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v1/stream.mjpeg", "/v1/camera", "/v1/detections/latest"} {
		if msg := errorBody(t, do(t, s, http.MethodGet, path, "", nil), 404); !strings.Contains(msg, "--camera") {
			t.Fatalf("%s: %s", path, msg)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("no model: %v", err)
	}
	if _, err := New(Config{ModelPath: "/nonexistent/m.onnx"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/m.onnx") {
		t.Fatalf("missing model: %v", err)
	}
	_, err := New(Config{ModelPath: nanodetPath(t), Provider: "cuda"})
	if err == nil || !strings.Contains(err.Error(), "execution provider unavailable") {
		t.Fatalf("cuda on a CPU build: %v", err)
	}
}
