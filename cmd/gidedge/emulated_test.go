//go:build emulated

// The arm64 build checked under emulation: `make test-arm64` (part of `make
// test`) cross-builds bin/linux-arm64/gidedge and bin/gidedge, then runs this
// file with -tags emulated. Each check runs the arm64 binary with
// qemu-aarch64-static -L third_party/sysroot-arm64 (no binfmt registration
// needed) and, where it serves detections, compares them with the x86-64
// binary serving the same model: boxes within 1 px, scores within 1e-3.
//
// Every missing piece fails the test with the command that provides it; CI
// always has them after scripts/setup.sh --arm64.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/internal/pins"
	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/internal/videotest"
	"github.com/gidedge/gidedge/serve"
)

// qemuCPU is the core qemu emulates. Cortex-A76 is the closest one qemu 7.2
// models to Jetson Orin's Cortex-A78AE (both ARMv8.2-A with dot product and
// FP16, no SVE). qemu's default "max" core adds SVE, which Orin lacks and
// which made one NanoDet inference 14x slower to emulate (136 s against 10 s).
const qemuCPU = "cortex-a76"

// tolerance is how closely detections must agree between the two builds.
type tolerance struct {
	boxPixels   float64 // each of x, y, width, height, in pixels ...
	boxFraction float64 // ... or this fraction of the box's longer side, whichever is larger
	score       float64 // absolute
}

var (
	// float32 models run the same float kernels up to summation order.
	fp32Tolerance = tolerance{boxPixels: 1, score: 1e-3}
	// INT8 models do not: ONNX Runtime's arm64 integer kernels requantize in
	// fixed point where x86-64's use float (its CPU provider's
	// UseFixedPointRequantOnARM64), so an intermediate value can land one
	// quantization step apart and the difference grows through NanoDet's 73
	// quantized convolutions. NanoDet decodes a box side as the mean of a
	// distribution over bins one stride wide (up to 64 px in a 640 px image),
	// so the difference scales with the box. Measured over two runs on three
	// COCO128 images: at most 11.2 px on a 458x461 box (2.4% of its side)
	// and 0.018 in score; the bounds leave about twice that.
	int8Tolerance = tolerance{boxPixels: 2, boxFraction: 0.05, score: 0.03}
)

// compareImages are COCO128 images with several objects of different sizes.
var compareImages = []string{"000000000036.jpg", "000000000042.jpg", "000000000074.jpg"}

type emulated struct {
	root, arm, x86, sysroot, qemu string
	pins                          pins.Versions
}

func newEmulated(t *testing.T) emulated {
	t.Helper()
	root, v, err := pins.LoadRoot()
	if err != nil {
		t.Fatal(err)
	}
	e := emulated{
		root: root, pins: v,
		arm:     filepath.Join(root, "bin", "linux-arm64", "gidedge"),
		x86:     filepath.Join(root, "bin", "gidedge"),
		sysroot: filepath.Join(root, "third_party", "sysroot-arm64"),
	}
	for path, how := range map[string]string{
		e.arm:     "make build-arm64",
		e.x86:     "make build",
		e.sysroot: "scripts/setup.sh --arm64",
	} {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s is missing (%v); run %s", path, err, how)
		}
	}
	if e.qemu, err = exec.LookPath("qemu-aarch64-static"); err != nil {
		t.Fatalf("qemu-aarch64-static not on PATH (%v); run scripts/setup.sh --arm64", err)
	}
	return e
}

// armCmd runs the arm64 binary under qemu.
func (e emulated) armCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.qemu, append([]string{"-cpu", qemuCPU, "-L", e.sysroot, e.arm}, args...)...)
}

func (e emulated) x86Cmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.x86, args...)
}

func output(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startServer starts `gidedge serve` from cmd (its arguments must end with
// --addr addr) and waits until /healthz answers; the server is stopped with
// SIGTERM when the test ends.
func startServer(t *testing.T, name string, cmd *exec.Cmd, addr string) string {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("%s exited before serving: %v\n%s", name, err, log.String())
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s did not answer /healthz within 3 minutes:\n%s", name, log.String())
	return ""
}

func detect(t *testing.T, url, imagePath string) serve.DetectResponse {
	t.Helper()
	img, err := os.ReadFile(imagePath)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/v1/detect %s: %d %s", url, filepath.Base(imagePath), resp.StatusCode, body)
	}
	var out serve.DetectResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("POST %s/v1/detect: %v in %s", url, err, body)
	}
	return out
}

// pairDetections pairs every reference detection with the unused detection
// of the same class whose box is nearest (largest coordinate difference);
// match[i] is -1 when none is left, boxDiff[i] that pair's difference.
func pairDetections(ref, got []serve.DetectionJSON) (match []int, boxDiff []float64) {
	used := make([]bool, len(got))
	match, boxDiff = make([]int, len(ref)), make([]float64, len(ref))
	for i, r := range ref {
		match[i], boxDiff[i] = -1, math.Inf(1)
		for j, g := range got {
			if used[j] || g.CategoryID != r.CategoryID {
				continue
			}
			d := 0.0
			for k := range 4 {
				d = math.Max(d, math.Abs(float64(g.BBox[k]-r.BBox[k])))
			}
			if d < boxDiff[i] {
				match[i], boxDiff[i] = j, d
			}
		}
		if match[i] >= 0 {
			used[match[i]] = true
		}
	}
	return match, boxDiff
}

// sameDetections checks that both builds found the same objects (equal
// counts, every x86-64 detection paired by pairDetections) within tol.
func sameDetections(ref, got []serve.DetectionJSON, tol tolerance) error {
	if len(ref) != len(got) {
		return fmt.Errorf("x86-64 found %d objects, arm64 %d", len(ref), len(got))
	}
	match, boxDiff := pairDetections(ref, got)
	for i, r := range ref {
		if match[i] < 0 {
			return fmt.Errorf("x86-64 detection %d (%s %.4f) has no arm64 counterpart", i, r.Category, r.Score)
		}
		g := got[match[i]]
		scoreDiff := math.Abs(float64(g.Score - r.Score))
		boxLimit := math.Max(tol.boxPixels, tol.boxFraction*math.Max(float64(r.BBox[2]), float64(r.BBox[3])))
		if boxDiff[i] > boxLimit || scoreDiff > tol.score {
			return fmt.Errorf("%s: x86-64 box %v score %.5f, arm64 box %v score %.5f (box off by %.3f px, limit %.1f; score by %.2g, limit %.2g)",
				r.Category, r.BBox, r.Score, g.BBox, g.Score, boxDiff[i], boxLimit, scoreDiff, tol.score)
		}
	}
	return nil
}

// largestDifferences is the largest box and score difference of the pairs,
// for the log.
func largestDifferences(ref, got []serve.DetectionJSON) (box, score float64) {
	match, boxDiff := pairDetections(ref, got)
	for i, m := range match {
		if m >= 0 {
			box = math.Max(box, boxDiff[i])
			score = math.Max(score, math.Abs(float64(got[m].Score-ref[i].Score)))
		}
	}
	return box, score
}

// compareServing serves model from both builds and compares their answers
// on compareImages.
func compareServing(t *testing.T, e emulated, model string, tol tolerance) {
	ctx := context.Background()
	armAddr, x86Addr := freeAddr(t), freeAddr(t)
	// Emulated inference takes seconds; the default 10 s deadline is for devices.
	flags := []string{"serve", "--model", model, "--timeout", "10m", "--log-level", "warn", "--addr"}
	armURL := startServer(t, "arm64 serve", e.armCmd(ctx, append(flags, armAddr)...), armAddr)
	x86URL := startServer(t, "x86-64 serve", e.x86Cmd(ctx, append(flags, x86Addr)...), x86Addr)
	images := sharedtest.Dir(t, "data", "coco128", "images")
	total := 0
	for _, name := range compareImages {
		ref := detect(t, x86URL, filepath.Join(images, name))
		got := detect(t, armURL, filepath.Join(images, name))
		if ref.Width != got.Width || ref.Height != got.Height {
			t.Errorf("%s: x86-64 decoded %dx%d, arm64 %dx%d", name, ref.Width, ref.Height, got.Width, got.Height)
		}
		if err := sameDetections(ref.Detections, got.Detections, tol); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		total += len(ref.Detections)
		box, score := largestDifferences(ref.Detections, got.Detections)
		t.Logf("%s: largest differences %.3f px, score %.2g", name, box, score)
		t.Logf("%s: %d detections agree; arm64 inference %.0f ms under qemu, x86-64 %.1f ms",
			name, len(ref.Detections), got.TimingMS.Infer, ref.TimingMS.Infer)
	}
	if total == 0 {
		t.Fatal("no detections on any image: the comparison checked nothing")
	}
}

func TestArm64Emulated(t *testing.T) {
	e := newEmulated(t)
	nanodet := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	ctx := context.Background()

	t.Run("binary is an arm64 ELF", func(t *testing.T) {
		f, err := elf.Open(e.arm)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Machine != elf.EM_AARCH64 {
			t.Fatalf("%s is %v, want EM_AARCH64", e.arm, f.Machine)
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(libs, " ")
		for _, want := range []string{"libopencv_core.so", "libopencv_videoio.so", "libopenblas.so.0"} {
			if !strings.Contains(joined, want) {
				t.Errorf("binary does not link %s: %s", want, joined)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		if out := output(t, e.armCmd(ctx, "version")); !strings.Contains(out, "linux/arm64") {
			t.Fatalf("version under qemu: %q, want linux/arm64", out)
		}
	})

	t.Run("doctor", func(t *testing.T) {
		out := output(t, e.armCmd(ctx, "doctor"))
		for _, want := range []string{
			"linux/arm64",
			"ONNX Runtime  " + e.pins.ORT + " (",
			"linux-arm64/libonnxruntime.so.1",
			"OpenCV        " + e.pins.OpenCVDebian + " (gocv " + strings.TrimPrefix(e.pins.GoCV, "v") + ")",
			"OpenBLAS",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor under qemu lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("serve NanoDet fp32 as on x86-64", func(t *testing.T) { compareServing(t, e, nanodet, fp32Tolerance) })

	int8Model := filepath.Join(t.TempDir(), "nanodet_m_320_int8.onnx")
	t.Run("serve NanoDet INT8 as on x86-64", func(t *testing.T) {
		output(t, e.x86Cmd(ctx, "quantize", "--model", nanodet, "--calib", sharedtest.Dir(t, "data", "coco128", "images"),
			"--calib-images", "8", "--out", int8Model))
		compareServing(t, e, int8Model, int8Tolerance)
	})

	t.Run("bench latency reports emulation", func(t *testing.T) {
		model := int8Model // the faster of the two under emulation
		if _, err := os.Stat(model); err != nil {
			model = nanodet
		}
		dir := t.TempDir()
		img, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "data", "coco128", "images"), compareImages[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, compareImages[0]), img, 0o644); err != nil {
			t.Fatal(err)
		}
		out := output(t, e.armCmd(ctx, "bench", "latency", "--model", model, "--images", dir,
			"--n", "2", "--warmup", "1", "--concurrency", "1", "--json"))
		var rep benchlat.Report
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
			t.Fatalf("bench latency --json: %v\n%s", err, out)
		}
		if rep.Host.Arch != "arm64" || !strings.Contains(rep.Host.Emulation, "qemu-aarch64-static") ||
			!strings.Contains(rep.Host.Emulation, "x86_64") {
			t.Fatalf("report host %+v: want arm64 with the emulation named", rep.Host)
		}
		if len(rep.Results) != 1 || rep.P50MS <= 0 {
			t.Fatalf("report results %+v", rep.Results)
		}
		t.Logf("emulation: %s; p50 %.0f ms", rep.Host.Emulation, rep.P50MS)
	})

	t.Run("camera from a video file", func(t *testing.T) {
		model := int8Model
		if _, err := os.Stat(model); err != nil {
			model = nanodet
		}
		video := filepath.Join(t.TempDir(), "person.avi")
		videotest.WritePersonVideo(t, video, 20)
		addr := freeAddr(t)
		url := startServer(t, "arm64 serve --camera", e.armCmd(ctx, "serve", "--model", model, "--camera", video,
			"--timeout", "10m", "--log-level", "warn", "--addr", addr), addr)
		deadline := time.Now().Add(3 * time.Minute)
		for {
			var status serve.CameraStatus
			// 503 while the camera is not ready yet, with the same body.
			getJSON(t, url+"/v1/camera", &status, http.StatusOK, http.StatusServiceUnavailable)
			if status.FramesProcessed >= 1 {
				var latest serve.FrameDetections
				getJSON(t, url+"/v1/detections/latest", &latest, http.StatusOK)
				if latest.Width != videotest.Width || latest.Height != videotest.Height {
					t.Fatalf("camera frame %dx%d, want the %dx%d video frames", latest.Width, latest.Height, videotest.Width, videotest.Height)
				}
				person := false
				for _, d := range latest.Detections {
					person = person || d.Category == "person"
				}
				if !person {
					t.Fatalf("no person found in the video frame: %+v", latest.Detections)
				}
				t.Logf("camera: %d frames read, %d processed; frame %d has %d detections", status.FramesRead, status.FramesProcessed, latest.Frame, len(latest.Detections))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no camera frame processed within 3 minutes: %+v", status)
			}
			time.Sleep(time.Second)
		}
	})
}

// getJSON decodes the body of a GET answered with one of the codes.
func getJSON(t *testing.T, url string, v any, codes ...int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !slices.Contains(codes, resp.StatusCode) {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}
