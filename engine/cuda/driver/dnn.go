package driver

import (
	"fmt"
	"sync"
	"unsafe"
)

// Conv is one 2-D convolution over NCHW float32 tensors: input [N, C, H, W],
// weights [K, C/Groups, KH, KW], output [N, K, OutH, OutW].
type Conv struct {
	N, C, H, W           int
	K, KH, KW            int
	StrideH, StrideW     int
	PadH, PadW           int
	DilationH, DilationW int
	Groups               int
	TF32                 bool // allow tensor-core TF32 math
}

// OutH is the output height.
func (c Conv) OutH() int { return (c.H+2*c.PadH-c.DilationH*(c.KH-1)-1)/c.StrideH + 1 }

// OutW is the output width.
func (c Conv) OutW() int { return (c.W+2*c.PadW-c.DilationW*(c.KW-1)-1)/c.StrideW + 1 }

// Check validates the geometry.
func (c Conv) Check() error {
	switch {
	case min(c.N, c.C, c.H, c.W, c.K, c.KH, c.KW) <= 0:
		return fmt.Errorf("conv %+v: sizes must be positive", c)
	case min(c.StrideH, c.StrideW, c.DilationH, c.DilationW, c.Groups) <= 0 || min(c.PadH, c.PadW) < 0:
		return fmt.Errorf("conv %+v: strides, dilations and groups must be positive, paddings non-negative", c)
	case c.C%c.Groups != 0 || c.K%c.Groups != 0:
		return fmt.Errorf("conv %+v: %d groups must divide %d input and %d output channels", c, c.Groups, c.C, c.K)
	case c.OutH() <= 0 || c.OutW() <= 0:
		return fmt.Errorf("conv %+v: output would be empty", c)
	}
	return nil
}

// DNN runs convolutions through a vendor library. The cuDNN legacy API
// (deprecated in cuDNN 9, still shipped) implements it today; a cuDNN
// graph-API implementation can replace it without touching callers. Each
// call computes out = result + beta·out on stream s, with workspace from
// the allocator DNN was opened with.
type DNN interface {
	// Name says which library and API, e.g. "cuDNN 9.10.2 (legacy API)".
	Name() string
	// ConvForward: y = conv(x, w) + beta·y.
	ConvForward(s *Stream, c Conv, x, w, y DevicePtr, beta float32) error
	// ConvBackwardData: dx = ∂/∂x given dy + beta·dx.
	ConvBackwardData(s *Stream, c Conv, w, dy, dx DevicePtr, beta float32) error
	// ConvBackwardFilter: dw = ∂/∂w given x and dy + beta·dw.
	ConvBackwardFilter(s *Stream, c Conv, x, dy, dw DevicePtr, beta float32) error
	// Close releases the handle and cached descriptors.
	Close() error
}

// DNN loads cuDNN 9 (once per process) and returns its legacy-API
// implementation, taking workspace from alloc. cuDNN is optional: the error
// matches ErrUnavailable when it is missing.
func (c *Context) DNN(alloc *Allocator) (DNN, error) {
	if err := c.d.loadCUDNN(); err != nil {
		return nil, err
	}
	h, rc := c.d.native.cudnnCreate(c.h)
	if err := c.d.cudnnError("cudnnCreate", rc, ""); err != nil {
		return nil, err
	}
	return &legacyDNN{c: c, h: h, alloc: alloc, desc: map[Conv]*convDescriptors{}}, nil
}

type legacyDNN struct {
	c     *Context
	h     unsafe.Pointer
	alloc *Allocator
	mu    sync.Mutex
	desc  map[Conv]*convDescriptors
}

var _ DNN = (*legacyDNN)(nil)

func (l *legacyDNN) Name() string { return "cuDNN " + l.c.d.libs.CUDNN.Version + " (legacy API)" }

// descriptors returns (creating once) the descriptors of c.
func (l *legacyDNN) descriptors(c Conv) (*convDescriptors, error) {
	if d, ok := l.desc[c]; ok {
		return d, nil
	}
	n := l.c.d.native
	d := &convDescriptors{}
	var rc int
	fail := func(call string) error {
		l.destroy(d)
		return l.c.d.cudnnError(call, rc, fmt.Sprintf("%+v", c))
	}
	if d.x, rc = n.cudnnTensor(c.N, c.C, c.H, c.W); rc != 0 {
		return nil, fail("cudnnSetTensor4dDescriptor")
	}
	if d.y, rc = n.cudnnTensor(c.N, c.K, c.OutH(), c.OutW()); rc != 0 {
		return nil, fail("cudnnSetTensor4dDescriptor")
	}
	if d.w, rc = n.cudnnFilter(c.K, c.C/c.Groups, c.KH, c.KW); rc != 0 {
		return nil, fail("cudnnSetFilter4dDescriptor")
	}
	if d.conv, rc = n.cudnnConvolution(c); rc != 0 {
		return nil, fail("cudnnSetConvolution2dDescriptor")
	}
	l.desc[c] = d
	return d, nil
}

func (l *legacyDNN) destroy(d *convDescriptors) {
	n := l.c.d.native
	if d.x != nil {
		n.cudnnDestroyTensor(d.x)
	}
	if d.y != nil {
		n.cudnnDestroyTensor(d.y)
	}
	if d.w != nil {
		n.cudnnDestroyFilter(d.w)
	}
	if d.conv != nil {
		n.cudnnDestroyConvolution(d.conv)
	}
}

func (l *legacyDNN) run(pass convPass, s *Stream, c Conv, in1, in2, out DevicePtr, beta float32) error {
	if err := c.Check(); err != nil {
		return argError(pass.String(), "%v", err)
	}
	if in1 == 0 || in2 == 0 || out == 0 {
		return argError(pass.String(), "null operand")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d, err := l.descriptors(c)
	if err != nil {
		return err
	}
	n := l.c.d.native
	if err := l.c.d.cudnnError("cudnnSetStream", n.cudnnSetStream(l.c.h, l.h, s.h), ""); err != nil {
		return err
	}
	if !d.picked[pass] {
		algo, ws, rc := n.cudnnPick(l.c.h, l.h, pass, d)
		if err := l.c.d.cudnnError(pass.String()+" algorithm choice", rc, fmt.Sprintf("%+v", c)); err != nil {
			return err
		}
		d.algo[pass], d.workspace[pass], d.picked[pass] = algo, ws, true
	}
	var work Buffer
	if d.workspace[pass] > 0 {
		if work, err = l.alloc.Alloc(int(d.workspace[pass])); err != nil {
			return err
		}
		// Stream order makes the block safe to hand out again at once.
		defer l.alloc.Free(work)
	}
	rc := n.cudnnRun(l.c.h, l.h, pass, d, 1, in1, in2, work.Ptr, d.workspace[pass], beta, out)
	return l.c.d.cudnnError(pass.String(), rc, fmt.Sprintf("%+v", c))
}

func (l *legacyDNN) ConvForward(s *Stream, c Conv, x, w, y DevicePtr, beta float32) error {
	return l.run(convForward, s, c, x, w, y, beta)
}

func (l *legacyDNN) ConvBackwardData(s *Stream, c Conv, w, dy, dx DevicePtr, beta float32) error {
	return l.run(convBackwardData, s, c, w, dy, dx, beta)
}

func (l *legacyDNN) ConvBackwardFilter(s *Stream, c Conv, x, dy, dw DevicePtr, beta float32) error {
	return l.run(convBackwardFilter, s, c, x, dy, dw, beta)
}

func (l *legacyDNN) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, d := range l.desc {
		l.destroy(d)
		delete(l.desc, c)
	}
	if l.h == nil {
		return nil
	}
	err := l.c.d.cudnnError("cudnnDestroy", l.c.d.native.cudnnDestroy(l.c.h, l.h), "")
	l.h = nil
	return err
}

const noAlgorithm = 99999 // binding.h's GD_NO_ALGORITHM

func (d *Driver) cudnnError(call string, code int, detail string) error {
	if code == 0 {
		return nil
	}
	name := ""
	if code != noAlgorithm {
		name = d.native.cudnnErrorString(code)
	}
	return statusError(&d.libs.CUDNN, call, code, detail, name, nil, "CUDNN_STATUS_", cudnnHint, reportBug)
}
