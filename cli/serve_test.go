package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

// lockedBuffer is a bytes.Buffer safe to write from the server goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs runServe on model at a free loopback port until ctx ends
// and returns its address and the channel its result arrives on.
func startServe(t *testing.T, ctx context.Context, model string) (string, chan error) {
	t.Helper()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{Model: model, Addr: "127.0.0.1:0", Sessions: 1, Timeout: 5 * time.Second,
			MaxBody: 1 << 20, Drain: 5 * time.Second, LogLevel: "warn"}, &out, io.Discard)
	}()
	return servedURL(t, &out), done
}

// servedURL waits for runServe to print its address and returns it.
func servedURL(t *testing.T, out *lockedBuffer) string {
	t.Helper()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		url = addr.FindString(out.String())
	}
	if url == "" {
		t.Fatalf("no address printed: %q", out.String())
	}
	return url
}

func TestRunServe(t *testing.T) {
	model := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	jpg, err := os.ReadFile(sharedtest.Dir(t, "data", "coco128", "images", "000000000036.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := startServe(t, ctx, model)
	resp, err := http.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"category":"person"`) {
		t.Fatalf("detect: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runServe did not return after cancel")
	}
}

func TestRunServeErrors(t *testing.T) {
	model := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	tests := []struct {
		name string
		o    serveOptions
		want string
	}{
		{"no model", serveOptions{LogLevel: "info"}, "--model is required"},
		{"bad log level", serveOptions{Model: model, LogLevel: "loud"}, "--log-level"},
		{"cuda on a CPU build", serveOptions{Model: model, Provider: "cuda", LogLevel: "info", Addr: "127.0.0.1:0"}, "execution provider unavailable"},
		{"bad address", serveOptions{Model: model, LogLevel: "info", Addr: "127.0.0.1:99999"}, "listen on 127.0.0.1:99999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runServe(context.Background(), tc.o, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
