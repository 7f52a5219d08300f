// Command yoloxlike writes the YOLOX-like test detector (export.WriteYOLOXLike)
// for the quantization benchmarks: a model with the graph of a public YOLOX
// export (Focus stem, SiLU, SPP, PAFPN, one concatenated [1, N, 5+K] output,
// BGR 0–255 input letterboxed with 114) whose batch-norm statistics are
// measured on real images. The same flags and images give the same bytes.
//
//	go run ./benchmarks/yoloxlike --calib ../shared/data/coco128/images --out runs/quantize/yoloxlike_tiny.onnx
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/quantize"
)

func main() {
	var cfg export.YOLOXLike
	out := flag.String("out", "", "ONNX file to write (required)")
	calib := flag.String("calib", "", "folder of images the batch-norm statistics are measured on (required)")
	images := flag.Int("images", 16, "images used, evenly spaced over the folder")
	flag.Float64Var(&cfg.Width, "width", 0.375, "channel multiplier: 0.375 is YOLOX-Tiny, 0.25 YOLOX-Nano")
	flag.BoolVar(&cfg.Depthwise, "depthwise", false, "depthwise 3×3 + pointwise 1×1 instead of 3×3 convolutions (YOLOX-Nano)")
	flag.IntVar(&cfg.Size, "size", 416, "input height and width, a multiple of 32")
	flag.IntVar(&cfg.Classes, "classes", 80, "class scores per position")
	flag.IntVar(&cfg.Opset, "opset", 11, "ONNX opset (public YOLOX exports use 11)")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "weight seed")
	flag.Float64Var(&cfg.RandomShare, "random-share", 0, "share of each filter's energy drawn at random instead of from a data patch")
	flag.IntVar(&cfg.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: its choice)")
	flag.Parse()
	if err := run(cfg, *out, *calib, *images); err != nil {
		fmt.Fprintln(os.Stderr, "yoloxlike:", err)
		os.Exit(1)
	}
}

func run(cfg export.YOLOXLike, out, calib string, images int) error {
	if out == "" || calib == "" {
		return fmt.Errorf("--out and --calib are required")
	}
	paths, err := quantize.ListImages(calib, images)
	if err != nil {
		return err
	}
	pre := infer.Preprocess{Width: cfg.Size, Height: cfg.Size, Layout: infer.LayoutNCHW, ChannelOrder: infer.OrderBGR,
		Resize: infer.ResizeLetter, PadValue: 114, PixelScale: 1, Std: [3]float32{1, 1, 1}}
	var inputs [][]float32
	for _, p := range paths {
		x, err := quantize.LoadInput(p, pre)
		if err != nil {
			return err
		}
		inputs = append(inputs, x)
	}
	m, err := export.WriteYOLOXLike(cfg, inputs)
	if err != nil {
		return err
	}
	if err := onnxgraph.Save(out, m); err != nil {
		return err
	}
	fmt.Printf("wrote %s: YOLOX-like width %.3g depthwise %v, %dx%d, %d classes, opset %d, batch-norm statistics from %d images of %s\n",
		out, cfg.Width, cfg.Depthwise, cfg.Size, cfg.Size, cfg.Classes, onnxgraph.Opset(m), len(inputs), calib)
	return nil
}
