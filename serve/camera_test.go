package serve

import (
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gidedge/gidedge/internal/videotest"
)

func cameraStatus(t testing.TB, url string) (int, CameraStatus) {
	t.Helper()
	code, body, err := get(url + "/v1/camera")
	if err != nil {
		t.Fatal(err)
	}
	var st CameraStatus
	decodeJSON(t, body, &st)
	return code, st
}

// firstMJPEGFrame reads one part of the MJPEG stream.
func firstMJPEGFrame(t testing.TB, url string) image.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/stream.mjpeg", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/x-mixed-replace" {
		t.Fatalf("stream content type %q (%v)", resp.Header.Get("Content-Type"), err)
	}
	part, err := multipart.NewReader(resp.Body, params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if part.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("part content type %q", part.Header.Get("Content-Type"))
	}
	img, err := jpeg.Decode(part)
	if err != nil {
		t.Fatalf("stream frame is not a JPEG: %v", err)
	}
	return img
}

func TestCameraFromVideoFile(t *testing.T) {
	video := filepath.Join(t.TempDir(), "camera.avi")
	videotest.WritePersonVideo(t, video, 6)
	s := newTestServer(t, Config{Camera: video, CameraBackoffMin: 20 * time.Millisecond})
	l := startLive(t, s, context.Background())

	var fd FrameDetections
	eventually(t, 15*time.Second, "camera detections with a person", func() (bool, error) {
		code, body, err := get(l.url + "/v1/detections/latest")
		if err != nil || code != 200 {
			return false, err
		}
		fd = FrameDetections{}
		if err := json.Unmarshal(body, &fd); err != nil {
			return false, err
		}
		return len(fd.Detections) > 0 && fd.Detections[0].Category == "person", nil
	})
	if fd.Width != 480 || fd.Height != 640 || fd.Frame == 0 {
		t.Fatalf("frame detections %+v", fd)
	}
	code, st := cameraStatus(t, l.url)
	if code != 200 || !st.Ready || st.FramesRead == 0 || st.FramesProcessed == 0 || st.Error != "" {
		t.Fatalf("camera status %d %+v", code, st)
	}

	// The stream carries annotated frames: the person's label tag, filled
	// with the class colour (230, 25, 75), sits just above its box.
	img := firstMJPEGFrame(t, l.url)
	if img.Bounds().Dx() != 480 || img.Bounds().Dy() != 640 {
		t.Fatalf("stream frame is %v, want 480x640", img.Bounds())
	}
	box := fd.Detections[0].BBox
	r, g, b, _ := img.At(int(box[0])+3, int(box[1])-4).RGBA()
	if r>>8 < 190 || g>>8 > 70 || b>>8 < 35 || b>>8 > 115 {
		t.Fatalf("pixel above the person box is (%d,%d,%d), want the label colour (230,25,75)", r>>8, g>>8, b>>8)
	}

	_, metrics, _ := get(l.url + "/metrics")
	for _, want := range []string{"gidedge_camera_up 1", `gidedge_camera_frames_total{result="processed"}`, `gidedge_camera_frames_total{result="read"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	code, page, _ := get(l.url + "/")
	if code != 200 || !strings.Contains(string(page), `<img id="stream" src="/v1/stream.mjpeg"`) || !strings.Contains(string(page), `<span class="label">person</span>`) {
		t.Fatalf("viewer page %d:\n%s", code, page)
	}
}

func TestCameraFailureThenReconnect(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "later.avi")
	s := newTestServer(t, Config{Camera: video, CameraBackoffMin: 20 * time.Millisecond, CameraBackoffMax: 100 * time.Millisecond})
	l := startLive(t, s, context.Background())

	eventually(t, 5*time.Second, "camera reported not ready after retries", func() (bool, error) {
		code, st := cameraStatus(t, l.url)
		return code == 503 && !st.Ready && strings.Contains(st.Error, "cannot open") && st.Reconnects >= 2, nil
	})
	// The server stays up: probes and detection work without the camera.
	code, body, _ := get(l.url + "/healthz")
	var h healthz
	decodeJSON(t, body, &h)
	if code != 200 || h.Status != "degraded" || h.Camera == nil || h.Camera.Ready {
		t.Fatalf("healthz %d %+v", code, h)
	}
	if code, _, _, err := post(l.url, personJPEG(t)); code != 200 || err != nil {
		t.Fatalf("detect without camera: %d %v", code, err)
	}
	if code, _, _ := get(l.url + "/v1/detections/latest"); code != 503 {
		t.Fatalf("latest detections before any frame: %d, want 503", code)
	}

	videotest.WritePersonVideo(t, video, 3)
	eventually(t, 10*time.Second, "camera ready after the source appears", func() (bool, error) {
		code, st := cameraStatus(t, l.url)
		return code == 200 && st.Ready, nil
	})
}
