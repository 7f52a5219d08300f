package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/serve"
)

func init() { register(newServeCmd) }

type serveOptions struct {
	Model          string
	Addr           string
	Camera         string
	Provider       string
	DeviceID       int
	Sessions       int
	Threads        int
	Queue          int
	Timeout        time.Duration
	MaxBody        int64
	MaxPixels      int64
	Decoders       int
	Token          string
	Drain          time.Duration
	TensorRTCache  string
	TensorRTFP16   bool
	Adapter        string
	LogLevel       string
	CameraRetryMax time.Duration
}

func newServeCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve --model model.onnx",
		Short: "Serve a detector over REST (KServe v2 too) with an optional camera stream",
		Long: `serve runs an ONNX detector behind an HTTP server:

  POST /v1/detect              image/jpeg, image/png or multipart field "image";
                               query score_threshold, iou_threshold, max_detections
  GET  /v2, /v2/health/{live,ready}, /v2/models/{name}[/ready]
  POST /v2/models/{name}/infer KServe v2 tensors (FP32) in and out
  POST /v2/repository/models/{name}/load   reload the model file (also SIGHUP)
  GET  /metrics, /healthz
  GET  /, /v1/stream.mjpeg, /v1/detections/latest, /v1/camera   with --camera

The model is a gidedge export (pre/post-processing from its metadata) or a
known third-party detector (NanoDet, UltraFace). SIGTERM drains requests in
flight before exiting. The token may also come from $GIDEDGE_TOKEN, which keeps
it out of the process list.`,
		Example: `  gidedge serve --model ../shared/models/nanodet_m_320.onnx
  curl -s -H 'Content-Type: image/jpeg' --data-binary @dog.jpg localhost:8080/v1/detect
  gidedge serve --model model.onnx --camera 0 --addr 0.0.0.0:8080 --sessions 2
  gidedge serve --model model.onnx --provider tensorrt --trt-cache /var/cache/gidedge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Token == "" {
				o.Token = os.Getenv("GIDEDGE_TOKEN")
			}
			return runServe(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "ONNX detector to serve (required)")
	f.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "listen address; 0.0.0.0:8080 to accept other hosts")
	f.StringVar(&o.Camera, "camera", "", "camera: V4L2 index (0), video file, or rtsp:// URL")
	f.StringVar(&o.Provider, "provider", "cpu", "ONNX Runtime execution provider: cpu, cuda or tensorrt")
	f.IntVar(&o.DeviceID, "device", 0, "GPU index for cuda and tensorrt")
	f.IntVar(&o.Sessions, "sessions", 1, "ONNX Runtime sessions: detections that run at the same time")
	f.IntVar(&o.Threads, "threads", 0, "intra-op threads per session (0: ONNX Runtime's default)")
	f.IntVar(&o.Queue, "queue", 0, "requests that may wait for a session before 503 (0: 4 x sessions, -1: none)")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request deadline (504 after it)")
	f.Int64Var(&o.MaxBody, "max-body", 10<<20, "largest request body in bytes (413 above it)")
	f.Int64Var(&o.MaxPixels, "max-pixels", 0, "largest image in pixels, read from its header (413 above it; 0: 16x the model input per side, bounded by memory)")
	f.IntVar(&o.Decoders, "decoders", 0, "images or infer bodies decoded at once, one of them large (0: the number of CPUs)")
	f.StringVar(&o.Token, "token", "", "require 'Authorization: Bearer TOKEN' (default $GIDEDGE_TOKEN)")
	f.DurationVar(&o.Drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	f.StringVar(&o.TensorRTCache, "trt-cache", "", "folder for TensorRT engine caches (tensorrt provider)")
	f.BoolVar(&o.TensorRTFP16, "trt-fp16", false, "let TensorRT build FP16 engines")
	f.StringVar(&o.Adapter, "adapter", "", "force the model family: gidedge, nanodet, ultraface or yolox")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&o.CameraRetryMax, "camera-retry-max", 30*time.Second, "longest wait between camera reconnects")
	return cmd
}

func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("serve: --log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	if o.Model == "" {
		return fmt.Errorf("serve: --model is required (an ONNX detector, e.g. ../shared/models/nanodet_m_320.onnx)")
	}
	cfg := serve.Config{
		ModelPath: o.Model, Addr: o.Addr, Provider: o.Provider, DeviceID: o.DeviceID,
		Sessions: o.Sessions, IntraOpThreads: o.Threads, QueueSize: o.Queue,
		RequestTimeout: o.Timeout, MaxBodyBytes: o.MaxBody, DrainTimeout: o.Drain,
		MaxPixels: o.MaxPixels, Decoders: o.Decoders,
		Token: o.Token, Camera: o.Camera, CameraBackoffMax: o.CameraRetryMax,
		TensorRTCache: o.TensorRTCache, TensorRTFP16: o.TensorRTFP16, Adapter: o.Adapter,
		Version: buildinfo.Version,
		Log:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("serve: listen on %s: %w", o.Addr, err)
	}
	ctx, stop := serve.HandleSignals(ctx, s)
	defer stop()
	fmt.Fprintf(stdout, "gidedge serving %s on http://%s\n", o.Model, ln.Addr())
	return s.Serve(ctx, ln)
}
