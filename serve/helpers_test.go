package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

func nanodetPath(t testing.TB) string {
	return filepath.Join(sharedtest.Dir(t), "models", "nanodet_m_320.onnx")
}

func ultrafacePath(t testing.TB) string {
	return filepath.Join(sharedtest.Dir(t), "models", "ultraface_rfb_320.onnx")
}

// personJPEG is coco128 image 36: a person under an umbrella (481x640).
func personJPEG(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "data", "coco128", "images", "000000000036.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testWriter sends server logs to t.Log so they show only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.ModelPath == "" {
		cfg.ModelPath = nanodetPath(t)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do runs one request through the handler in memory.
func do(t testing.TB, s *Server, method, target, contentType string, body []byte, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func decodeJSON(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, body)
	}
}

// errorBody checks a JSON error response and returns its message.
func errorBody(t testing.TB, rec *httptest.ResponseRecorder, code int) string {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d; body %s", rec.Code, code, rec.Body)
	}
	var e struct {
		Error string `json:"error"`
	}
	decodeJSON(t, rec.Body.Bytes(), &e)
	if e.Error == "" {
		t.Fatalf("error body without message: %s", rec.Body)
	}
	return e.Error
}

// live runs s on a loopback port until the test ends or stop is called.
type live struct {
	url  string
	stop context.CancelFunc
	done chan error
}

func startLive(t testing.TB, s *Server, ctx context.Context) *live {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &live{url: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { l.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20s")
		}
	})
	return l
}

var client = &http.Client{Timeout: 20 * time.Second}

// post sends an image to /v1/detect and returns the status and body.
func post(url string, img []byte) (int, []byte, http.Header, error) {
	resp, err := client.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(img))
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header, err
}

func get(url string) (int, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s (last error: %v)", what, timeout, last)
}

var errNotYet = errors.New("not yet")
