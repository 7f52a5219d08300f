package cli

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/benchlat/inproc"
	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/ort"
)

func init() { registerBench(newBenchLatencyCmd) }

type benchLatencyOptions struct {
	Model       string
	Compare     []string
	Images      string
	MaxImages   int
	Data        string
	Split       string
	N           int
	Warmup      int
	Concurrency []int
	Rounds      int
	URL         string
	Token       string
	JSON        bool
	Sessions    int
	Threads     int
	Provider    string
}

func newBenchLatencyCmd() *cobra.Command {
	o := benchLatencyOptions{N: 500, Warmup: 50, Concurrency: []int{1}, Rounds: 10, Sessions: 1, Provider: infer.ProviderCPU, MaxImages: 64}
	cmd := &cobra.Command{
		Use:   "latency --model model.onnx",
		Short: "Measure a detector's latency in-process and through a running server",
		Long: `latency sends the same images to a detector and reports p50/p90/p99/max latency,
mean ± std (jitter), throughput, resident memory and, on a Jetson, board power
and temperature (tegrastats or sysfs).

In-process mode times what a server does for one request without HTTP: JPEG
decode, preprocessing, the ONNX Runtime run (also shown alone as "session p50")
and post-processing. With --url the same images go to a running gidedge serve
(end-to-end), and the difference at p50 is printed as the server overhead;
the two are measured interleaved in --rounds rounds so both see the same
background load.
--compare adds models to the table (fp32 against int8, say); --data adds COCO
mAP measured on that labelled dataset, so one table shows speed and accuracy.
Without --images or --data, a synthetic 640x480 JPEG is used.`,
		Example: `  gidedge bench latency --model ../shared/models/nanodet_m_320.onnx --images ../shared/data/coco128/images --n 200
  gidedge bench latency --model fp32.onnx --compare int8.onnx --data ../shared/data/coco128 --json
  gidedge bench latency --model m.onnx --url http://127.0.0.1:8080 --concurrency 1,2,4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Token == "" {
				o.Token = os.Getenv("GIDEDGE_TOKEN")
			}
			return runBenchLatency(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "ONNX detector to time in-process (optional with --url)")
	f.StringSliceVar(&o.Compare, "compare", nil, "more models to time the same way (repeat or comma-separate)")
	f.StringVar(&o.Images, "images", "", "folder of .jpg/.png images to send")
	f.IntVar(&o.MaxImages, "max-images", o.MaxImages, "images read into memory and cycled through")
	f.StringVar(&o.Data, "data", "", "labelled dataset (COCO or VOC folder): adds an mAP column; its images are sent when --images is not given")
	f.StringVar(&o.Split, "split", "", "dataset split for --data (default: the dataset's only or val split)")
	f.IntVar(&o.N, "n", o.N, "timed requests per measurement")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed requests first")
	f.IntSliceVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight, one measurement each (e.g. 1,2,4)")
	f.IntVar(&o.Rounds, "rounds", o.Rounds, "with --url and --model: alternate in-process and end-to-end in this many rounds")
	f.StringVar(&o.URL, "url", "", "also time a running gidedge serve at this base URL (end-to-end)")
	f.StringVar(&o.Token, "token", "", "bearer token for --url (default $GIDEDGE_TOKEN)")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object (p50_ms, p99_ms, throughput, results) instead of a table")
	f.IntVar(&o.Sessions, "sessions", o.Sessions, "ONNX Runtime sessions for in-process runs (match the server's --sessions)")
	f.IntVar(&o.Threads, "threads", 0, "intra-op threads per session (0: ONNX Runtime's default)")
	f.StringVar(&o.Provider, "provider", o.Provider, "execution provider for in-process runs: cpu, cuda or tensorrt")
	return cmd
}

func runBenchLatency(ctx context.Context, o benchLatencyOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Model == "" && o.URL == "" {
		return fmt.Errorf("bench latency: give --model (in-process), --url (end-to-end), or both")
	}
	if o.Model == "" && (len(o.Compare) > 0 || o.Data != "") {
		return fmt.Errorf("bench latency: --compare and --data need --model (they run in-process)")
	}
	if len(o.Concurrency) == 0 {
		return fmt.Errorf("bench latency: --concurrency is empty, want e.g. 1,2,4")
	}
	for _, c := range o.Concurrency {
		if c < 1 || c > 256 {
			return fmt.Errorf("bench latency: --concurrency %d, want 1..256", c)
		}
	}
	var ds *dataset.Dataset
	if o.Data != "" {
		var err error
		if ds, err = dataset.Load(o.Data, o.Split); err != nil {
			return fmt.Errorf("bench latency: --data: %w", err)
		}
		if err := ds.WriteReport(stderr, "bench latency: "); err != nil {
			return err
		}
	}
	images, err := benchImages(o, ds)
	if err != nil {
		return err
	}

	rep := benchlat.Report{N: o.N, Warmup: o.Warmup, Images: len(images), Host: benchlat.HostInfo()}
	power := benchlat.DetectPower()
	if power != nil {
		rep.Host.Power = power.Name
	}
	measure := func(c int, ts ...benchlat.Target) ([]benchlat.Result, error) {
		var names []string
		for _, t := range ts {
			names = append(names, t.Name()+" "+t.Mode())
		}
		rounds := 1
		if len(ts) > 1 {
			rounds = max(1, min(o.Rounds, o.N))
		}
		fmt.Fprintf(stderr, "measuring %s, concurrency %d ...\n", strings.Join(names, " and "), c)
		return benchlat.MeasureInterleaved(ctx, ts, images, benchlat.Options{N: o.N, Warmup: o.Warmup, Concurrency: c, Power: power}, rounds)
	}

	var models []string
	if o.Model != "" {
		models = append([]string{o.Model}, o.Compare...)
		if err := ort.Init(); err != nil {
			return fmt.Errorf("bench latency: %w", err)
		}
		rep.Host.Runtime = "ONNX Runtime " + ort.Version()
		rep.Host.Provider = o.Provider
	}
	var remote *benchlat.HTTPTarget
	if o.URL != "" {
		if remote, err = benchlat.NewHTTPTarget(ctx, o.URL, o.Token, slices.Max(o.Concurrency)); err != nil {
			return fmt.Errorf("bench latency: %w", err)
		}
		defer remote.Close()
	}
	for i, path := range models {
		tg, err := inproc.Open(path, infer.Options{Sessions: o.Sessions, Session: infer.SessionOptions{Provider: o.Provider, IntraOpThreads: o.Threads}})
		if err != nil {
			return fmt.Errorf("bench latency: %w", err)
		}
		var mAP, mAP50 *float64
		if ds != nil {
			fmt.Fprintf(stderr, "evaluating %s on %s (%d images) ...\n", tg.Name(), ds.Name, len(ds.Images))
			m, err := inproc.Accuracy(ctx, tg, ds)
			if err != nil {
				tg.Close()
				return fmt.Errorf("bench latency: %w", err)
			}
			mAP, mAP50 = &m.AP, &m.AP50
		}
		for _, c := range o.Concurrency {
			targets := []benchlat.Target{tg}
			if i == 0 && remote != nil {
				targets = append(targets, remote) // same model through the server, interleaved
			}
			rs, err := measure(c, targets...)
			if err != nil {
				tg.Close()
				return err
			}
			rs[0].MAP, rs[0].MAP50 = mAP, mAP50
			for _, r := range rs {
				rep.Add(r)
			}
		}
		tg.Close()
	}
	if len(models) == 0 {
		for _, c := range o.Concurrency {
			rs, err := measure(c, remote)
			if err != nil {
				return err
			}
			rep.Add(rs[0])
		}
	}
	rep.Finish()
	if o.JSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

// benchImages reads the images to send: --images, else the dataset's,
// else one synthetic frame.
func benchImages(o benchLatencyOptions, ds *dataset.Dataset) ([][]byte, error) {
	var paths []string
	switch {
	case o.Images != "":
		entries, err := os.ReadDir(o.Images)
		if err != nil {
			return nil, fmt.Errorf("bench latency: --images: %w", err)
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png") {
				paths = append(paths, filepath.Join(o.Images, e.Name()))
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("bench latency: --images %s has no .jpg, .jpeg or .png files", o.Images)
		}
	case ds != nil:
		for _, im := range ds.Images {
			paths = append(paths, im.Path)
		}
	default:
		return [][]byte{syntheticJPEG()}, nil
	}
	if o.MaxImages > 0 && len(paths) > o.MaxImages {
		paths = paths[:o.MaxImages]
	}
	images := make([][]byte, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("bench latency: %w", err)
		}
		if _, err := infer.DecodeImage(b); err != nil {
			return nil, fmt.Errorf("bench latency: image %s: %w", p, err)
		}
		images = append(images, b)
	}
	return images, nil
}

// syntheticJPEG is a 640x480 frame with smooth gradients and edges, so the
// decoder and resizer do realistic work.
func syntheticJPEG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			c := color.RGBA{R: uint8(x * 255 / 640), G: uint8(y * 255 / 480), B: uint8((x ^ y) & 0xff), A: 255}
			if (x/80+y/80)%2 == 0 {
				c.B = 255 - c.B
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err) // encoding an in-memory RGBA image cannot fail
	}
	return buf.Bytes()
}
