package infer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/ort"
)

// ErrClosed reports a call on a Detector after Close.
var ErrClosed = errors.New("infer: detector closed")

// preNMSTopK bounds the candidates NMS sees, so a near-zero score threshold
// (as mAP evaluation uses) costs a bounded time.
const preNMSTopK = 4000

// Options configure a Detector.
type Options struct {
	// Sessions is the number of ONNX Runtime sessions in the pool, i.e. how
	// many detections run at once (default 1).
	Sessions int
	Session  SessionOptions
	// Adapter forces a model family ("gidedge", "nanodet", "ultraface", "yolox");
	// empty chooses from the model's metadata and output names.
	Adapter string
	// MaxPixels bounds the images DetectEncoded accepts (0: MaxImagePixels).
	MaxPixels int64
}

// Timing is where the time of one detection went. Preprocessing happens
// before a session is taken, so it is never part of Wait for others.
type Timing struct {
	Wait        time.Duration // waiting for a free session
	Preprocess  time.Duration
	Infer       time.Duration
	Postprocess time.Duration
}

// Result is the outcome of one detection call.
type Result struct {
	Detections    []Detection // source-image pixels, by descending score
	Width, Height int         // source image size
	Timing        Timing
}

// Description says what a Detector runs.
type Description struct {
	Name       string // file name without .onnx
	Path       string
	Adapter    string
	ClassNames []string
	Input      Preprocess
	Defaults   Params
	Inputs     []TensorInfo
	Outputs    []TensorInfo
	Metadata   map[string]string
	Sessions   int
	Provider   string
}

// Detector runs one detector model end to end: preprocess, ONNX Runtime,
// decode and NMS. It is safe for concurrent use; calls beyond the number of
// sessions wait for a free one.
type Detector struct {
	desc      Description
	adapter   Adapter
	maxPixels int64
	workers   chan *worker
	// inputs keeps input tensors for reuse: a request fills one before it
	// takes a session, so there can be more of them than sessions.
	inputs chan *onnxruntime.Tensor[float32]
	done   chan struct{}
	once   sync.Once
}

// worker is one session with buffers bound to it.
type worker struct {
	sess    *session
	static  []onnxruntime.Value // preallocated outputs; nil where the shape is dynamic
	outputs []onnxruntime.Value // per-run slice handed to ONNX Runtime
	names   []string
	cands   []Detection
}

// Open loads an ONNX detector and creates its session pool.
func Open(path string, opts Options) (*Detector, error) {
	if err := ort.Init(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if opts.Sessions <= 0 {
		opts.Sessions = 1
	}
	m, err := loadModel(path)
	if err != nil {
		return nil, err
	}
	a, err := chooseAdapter(m.sig, opts.Adapter)
	if err != nil {
		return nil, err
	}
	pre := a.Preprocess()
	if err := pre.Validate(); err != nil {
		return nil, fmt.Errorf("infer: model %s: %w", path, err)
	}
	in := m.sig.Inputs[0]
	if (in.Shape[2] > 0 && int(in.Shape[2]) != pre.Height) || (in.Shape[3] > 0 && int(in.Shape[3]) != pre.Width) {
		return nil, fmt.Errorf("infer: model %s: input %q has shape %v, preprocessing makes %dx%d", path, in.Name, in.Shape, pre.Width, pre.Height)
	}
	provider := opts.Session.Provider
	if provider == "" {
		provider = ProviderCPU
	}
	d := &Detector{
		desc: Description{
			Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), Path: path,
			Adapter: a.Name(), ClassNames: a.ClassNames(), Input: pre, Defaults: a.Defaults(),
			Inputs: m.sig.Inputs, Outputs: m.sig.Outputs, Metadata: m.sig.Metadata,
			Sessions: opts.Sessions, Provider: provider,
		},
		adapter:   a,
		maxPixels: opts.MaxPixels,
		workers:   make(chan *worker, opts.Sessions),
		inputs:    make(chan *onnxruntime.Tensor[float32], 2*opts.Sessions+2),
		done:      make(chan struct{}),
	}
	for range opts.Sessions {
		w, err := newWorker(m, opts.Session)
		if err != nil {
			close(d.done)
			d.destroyIdle()
			return nil, err
		}
		d.workers <- w
	}
	return d, nil
}

func newWorker(m *model, opts SessionOptions) (*worker, error) {
	s, err := newSession(m, opts)
	if err != nil {
		return nil, err
	}
	w := &worker{sess: s}
	for _, o := range m.sig.Outputs {
		w.names = append(w.names, o.Name)
		var v onnxruntime.Value
		if shape, ok := staticShape(o.Shape); ok && o.Datatype == "FP32" {
			t, err := onnxruntime.NewEmptyTensor[float32](shape)
			if err != nil {
				w.destroy()
				return nil, fmt.Errorf("infer: output %q tensor %v: %w", o.Name, shape, err)
			}
			v = t
		}
		w.static = append(w.static, v)
	}
	w.outputs = make([]onnxruntime.Value, len(w.static))
	return w, nil
}

// staticShape returns the shape with a dynamic batch set to 1, and false if
// any other dimension is dynamic.
func staticShape(s []int64) (onnxruntime.Shape, bool) {
	out := make(onnxruntime.Shape, len(s))
	for i, v := range s {
		switch {
		case v > 0:
			out[i] = v
		case i == 0:
			out[i] = 1
		default:
			return nil, false
		}
	}
	return out, true
}

func (w *worker) destroy() {
	for _, v := range w.static {
		if v != nil {
			_ = v.Destroy()
		}
	}
	w.sess.destroy()
}

// Describe says what the detector runs.
func (d *Detector) Describe() Description { return d.desc }

// Close waits for calls in progress, then frees every session. Calls after
// Close fail with ErrClosed.
func (d *Detector) Close() error {
	d.once.Do(func() {
		close(d.done)
		for range d.desc.Sessions {
			(<-d.workers).destroy()
		}
		for {
			select {
			case t := <-d.inputs:
				_ = t.Destroy()
			default:
				return
			}
		}
	})
	return nil
}

// destroyIdle frees the sessions already in the pool (Open's failure path).
func (d *Detector) destroyIdle() {
	for {
		select {
		case w := <-d.workers:
			w.destroy()
		default:
			return
		}
	}
}

func (d *Detector) acquire(ctx context.Context) (*worker, error) {
	select {
	case <-d.done:
		return nil, ErrClosed
	default:
	}
	select {
	case w := <-d.workers:
		select {
		case <-d.done:
			d.workers <- w
			return nil, ErrClosed
		default:
			return w, nil
		}
	case <-d.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("infer: waiting for a session: %w", ctx.Err())
	}
}

func (d *Detector) release(w *worker) { d.workers <- w }

// Input is a model input tensor filled by Prepare, PreparePacked or
// PrepareImage, waiting for Run. It holds a pooled tensor: pass it to Run,
// which hands it back, or Release it.
type Input struct {
	d          *Detector
	tensor     *onnxruntime.Tensor[float32]
	tr         Transform
	preprocess time.Duration
}

// Release hands the tensor back to the detector's pool (Run does it too;
// a second call is a no-op).
func (in *Input) Release() {
	if in == nil || in.tensor == nil {
		return
	}
	t := in.tensor
	in.tensor = nil
	select {
	case <-in.d.done:
		_ = t.Destroy()
		return
	default:
	}
	select {
	case in.d.inputs <- t:
	default:
		_ = t.Destroy()
	}
}

// input takes a tensor from the pool or makes one.
func (d *Detector) input() (*onnxruntime.Tensor[float32], error) {
	select {
	case t := <-d.inputs:
		return t, nil
	default:
	}
	pre := d.desc.Input
	t, err := onnxruntime.NewEmptyTensor[float32](onnxruntime.NewShape(1, 3, int64(pre.Height), int64(pre.Width)))
	if err != nil {
		return nil, fmt.Errorf("infer: input tensor: %w", err)
	}
	return t, nil
}

// prepare fills a pooled tensor through fill, outside any session.
func (d *Detector) prepare(fill func([]float32) (Transform, error)) (*Input, error) {
	select {
	case <-d.done:
		return nil, ErrClosed
	default:
	}
	start := time.Now()
	t, err := d.input()
	if err != nil {
		return nil, err
	}
	in := &Input{d: d, tensor: t}
	if in.tr, err = fill(t.GetData()); err != nil {
		in.Release()
		return nil, err
	}
	in.preprocess = time.Since(start)
	return in, nil
}

// Prepare preprocesses img into a model input.
func (d *Detector) Prepare(img image.Image) (*Input, error) {
	if img == nil {
		return nil, fmt.Errorf("infer: detect: nil image")
	}
	return d.prepare(func(dst []float32) (Transform, error) { return d.desc.Input.Apply(img, dst) })
}

// PreparePacked preprocesses an interleaved 8-bit frame (a camera's BGR Mat).
func (d *Detector) PreparePacked(img Packed) (*Input, error) {
	return d.prepare(func(dst []float32) (Transform, error) { return d.desc.Input.ApplyPacked(img, dst) })
}

// PrepareImage preprocesses an image from DecodeFor.
func (d *Detector) PrepareImage(im *Image) (*Input, error) {
	return d.prepare(func(dst []float32) (Transform, error) { return d.desc.Input.ApplyImage(im, dst) })
}

// Detect finds objects in img. Zero fields of p take the model's defaults.
func (d *Detector) Detect(ctx context.Context, img image.Image, p Params) (*Result, error) {
	in, err := d.Prepare(img)
	if err != nil {
		return nil, err
	}
	return d.Run(ctx, in, p)
}

// DetectPacked is Detect for an interleaved 8-bit frame (a camera's BGR Mat).
func (d *Detector) DetectPacked(ctx context.Context, img Packed, p Params) (*Result, error) {
	in, err := d.PreparePacked(img)
	if err != nil {
		return nil, err
	}
	return d.Run(ctx, in, p)
}

// DetectEncoded decodes a JPEG or PNG (DecodeFor, with Options.MaxPixels)
// and detects objects in it: the whole pipeline a server runs for one
// request, in this process.
func (d *Detector) DetectEncoded(ctx context.Context, data []byte, p Params) (*Result, error) {
	im, err := DecodeFor(data, d.desc.Input, d.maxPixels)
	if err != nil {
		return nil, err
	}
	in, err := d.PrepareImage(im)
	im.Close()
	if err != nil {
		return nil, err
	}
	return d.Run(ctx, in, p)
}

// Run takes a session (waiting while all are busy, up to ctx), runs the
// model on in, decodes and suppresses the detections, and hands in back.
func (d *Detector) Run(ctx context.Context, in *Input, p Params) (*Result, error) {
	defer in.Release()
	if in == nil || in.tensor == nil || in.d != d {
		return nil, fmt.Errorf("infer: run: input not prepared by this detector or already used")
	}
	p = p.Or(d.desc.Defaults)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	w, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer d.release(w)
	res := &Result{Width: in.tr.SrcWidth, Height: in.tr.SrcHeight}
	t1 := time.Now()
	res.Timing.Wait = t1.Sub(start)
	res.Timing.Preprocess = in.preprocess
	copy(w.outputs, w.static)
	defer func() {
		for i, v := range w.outputs {
			if w.static[i] == nil && v != nil {
				_ = v.Destroy()
			}
			w.outputs[i] = nil
		}
	}()
	if err := w.sess.run(ctx, []onnxruntime.Value{in.tensor}, w.outputs); err != nil {
		return nil, fmt.Errorf("infer: model %s: run: %w", d.desc.Path, err)
	}
	t2 := time.Now()
	out := make(Outputs, len(w.outputs))
	for i, v := range w.outputs {
		if t, ok := v.(*onnxruntime.Tensor[float32]); ok {
			out[w.names[i]] = Tensor{Shape: t.GetShape(), Data: t.GetData()}
		}
	}
	w.cands, err = d.adapter.Decode(out, p, w.cands[:0])
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: decode: %w", d.desc.Path, err)
	}
	res.Detections = d.finish(w.cands, in.tr, p)
	res.Timing.Infer = t2.Sub(t1)
	res.Timing.Postprocess = time.Since(t2)
	return res, nil
}

// finish maps candidates to source pixels, runs NMS and labels the result
// in a new slice (cands is the worker's scratch).
func (d *Detector) finish(cands []Detection, tr Transform, p Params) []Detection {
	kept := cands[:0]
	for _, c := range cands {
		x1, y1, x2, y2 := tr.ToSource(c.Box[0], c.Box[1], c.Box[2], c.Box[3])
		if x2 <= x1 || y2 <= y1 {
			continue
		}
		c.Box = [4]float32{x1, y1, x2, y2}
		kept = append(kept, c)
	}
	if len(kept) > preNMSTopK {
		slices.SortFunc(kept, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
		kept = kept[:preNMSTopK]
	}
	dets := NMS(kept, p.IoUThreshold, p.MaxDetections)
	for i := range dets {
		dets[i].Label = d.desc.ClassNames[dets[i].Class]
	}
	return dets
}

// RawTensor is a tensor passed to or returned by RunTensors. Data is a
// []float32, []int64, []int32, []uint8, []int8 or []bool in row-major order.
type RawTensor struct {
	Name     string
	Datatype string // KServe v2 name: FP32, INT64, INT32, UINT8, INT8, BOOL
	Shape    []int64
	Data     any
}

// RunTensors runs the model on caller-supplied tensors (the KServe v2
// infer route): every model input must be given, as FP32. All outputs are
// returned, copied out of ONNX Runtime's memory.
func (d *Detector) RunTensors(ctx context.Context, inputs []RawTensor) ([]RawTensor, error) {
	byName := make(map[string]RawTensor, len(inputs))
	for _, in := range inputs {
		byName[in.Name] = in
	}
	values := make([]onnxruntime.Value, 0, len(d.desc.Inputs))
	defer func() {
		for _, v := range values {
			_ = v.Destroy()
		}
	}()
	for _, info := range d.desc.Inputs {
		in, ok := byName[info.Name]
		if !ok {
			return nil, fmt.Errorf("infer: input %q missing (model inputs: %s)", info.Name, TensorList(d.desc.Inputs))
		}
		delete(byName, info.Name)
		data, ok := in.Data.([]float32)
		if !ok || in.Datatype != "FP32" {
			return nil, fmt.Errorf("infer: input %q is %s, want FP32", in.Name, in.Datatype)
		}
		if err := checkShape(info, in.Shape, len(data)); err != nil {
			return nil, err
		}
		t, err := onnxruntime.NewTensor(onnxruntime.NewShape(in.Shape...), data)
		if err != nil {
			return nil, fmt.Errorf("infer: input %q: %w", in.Name, err)
		}
		values = append(values, t)
	}
	for name := range byName {
		return nil, fmt.Errorf("infer: input %q is not a model input (model inputs: %s)", name, TensorList(d.desc.Inputs))
	}
	w, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer d.release(w)
	outs := make([]onnxruntime.Value, len(d.desc.Outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	if err := w.sess.run(ctx, values, outs); err != nil {
		return nil, fmt.Errorf("infer: model %s: run: %w", d.desc.Path, err)
	}
	result := make([]RawTensor, len(outs))
	for i, v := range outs {
		rt, err := rawTensor(d.desc.Outputs[i].Name, v)
		if err != nil {
			return nil, err
		}
		result[i] = rt
	}
	return result, nil
}

func checkShape(info TensorInfo, shape []int64, n int) error {
	if len(shape) != len(info.Shape) {
		return fmt.Errorf("infer: input %q has shape %v, want %v", info.Name, shape, info.Shape)
	}
	total := int64(1)
	for i, v := range shape {
		if v <= 0 || (info.Shape[i] > 0 && v != info.Shape[i]) {
			return fmt.Errorf("infer: input %q has shape %v, want %v", info.Name, shape, info.Shape)
		}
		total *= v
	}
	if total != int64(n) {
		return fmt.Errorf("infer: input %q has %d values, shape %v needs %d", info.Name, n, shape, total)
	}
	return nil
}

// TensorList formats tensors as "name DATATYPE[shape], ..." for messages.
func TensorList(ts []TensorInfo) string {
	var names []string
	for _, t := range ts {
		names = append(names, fmt.Sprintf("%s %s%v", t.Name, t.Datatype, t.Shape))
	}
	return strings.Join(names, ", ")
}

func rawTensor(name string, v onnxruntime.Value) (RawTensor, error) {
	shape := []int64(v.GetShape())
	switch t := v.(type) {
	case *onnxruntime.Tensor[float32]:
		return RawTensor{Name: name, Datatype: "FP32", Shape: shape, Data: slices.Clone(t.GetData())}, nil
	case *onnxruntime.Tensor[int64]:
		return RawTensor{Name: name, Datatype: "INT64", Shape: shape, Data: slices.Clone(t.GetData())}, nil
	case *onnxruntime.Tensor[int32]:
		return RawTensor{Name: name, Datatype: "INT32", Shape: shape, Data: slices.Clone(t.GetData())}, nil
	case *onnxruntime.Tensor[uint8]:
		return RawTensor{Name: name, Datatype: "UINT8", Shape: shape, Data: slices.Clone(t.GetData())}, nil
	case *onnxruntime.Tensor[int8]:
		return RawTensor{Name: name, Datatype: "INT8", Shape: shape, Data: slices.Clone(t.GetData())}, nil
	}
	return RawTensor{}, fmt.Errorf("infer: output %q has type %T, which the server cannot return", name, v)
}
