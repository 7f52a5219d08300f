package serve

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gidedge/gidedge/internal/videotest"
)

// chromium runs headless Chromium on url with the given mode flags and
// returns its standard output.
func chromium(t *testing.T, url string, mode ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (scripts/setup.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(),
		// The MJPEG stream never finishes loading; give the page's script
		// time to poll once, then take what is there.
		"--timeout=4000", "--virtual-time-budget=4000",
	}, mode...)
	args = append(args, url)
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestViewerInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	video := filepath.Join(t.TempDir(), "camera.avi")
	videotest.WritePersonVideo(t, video, 6)
	s := newTestServer(t, Config{Camera: video, Token: "viewer-token"})
	l := startLive(t, s, context.Background())
	eventually(t, 15*time.Second, "first camera detections", func() (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, l.url+"/v1/detections/latest", nil)
		req.Header.Set("Authorization", "Bearer viewer-token")
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})

	dom := chromium(t, l.url+"/?access_token=viewer-token", "--dump-dom")
	for _, want := range []string{
		`<img id="stream" src="/v1/stream.mjpeg?access_token=viewer-token"`,
		`<ul id="detections">`,
		`<span class="label">person</span>`,
		`gidedge · model <b>nanodet_m_320</b>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q:\n%s", want, dom)
		}
	}

	// A screenshot for people reading the test output: GIDEDGE_VIEWER_SHOT=path.
	if shot := os.Getenv("GIDEDGE_VIEWER_SHOT"); shot != "" {
		chromium(t, l.url+"/?access_token=viewer-token", "--screenshot="+shot, "--window-size=1100,760")
		if _, err := os.Stat(shot); err != nil {
			t.Fatalf("screenshot: %v", err)
		}
	}
}
