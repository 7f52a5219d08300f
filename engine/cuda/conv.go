package cuda

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

// colLimit bounds the im2col scratch matrix (in float32): images are
// processed in chunks whose patch matrices fit.
const colLimit = 64 << 20

// conv holds a checked convolution's operands and derived sizes.
type conv struct {
	g                    backend.ConvGeometry
	cg, coutG, kk, ohw   int
	nx, nw, ny, imageLen int
}

func newConv(k string, g backend.ConvGeometry) conv {
	ref.CheckConv(Name, k, g)
	c := conv{g: g, cg: g.C / g.Groups, coutG: g.Cout / g.Groups, kk: g.KernelH * g.KernelW, ohw: g.OutH * g.OutW}
	c.imageLen = g.C * g.H * g.W
	c.nx = g.N * c.imageLen
	c.nw = g.Cout * c.cg * c.kk
	c.ny = g.N * g.Cout * c.ohw
	return c
}

// depthwise reports a convolution with one filter per channel.
func (c conv) depthwise() bool { return c.g.Groups == c.g.C && c.g.Cout == c.g.C }

// pointwise reports a 1×1 convolution that reads every pixel once: its
// input is already the patch matrix.
func (c conv) pointwise() bool {
	g := c.g
	return g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0
}

// kernel is the kernels' geometry of n images of channels channels.
func (c conv) kernel(n, channels int) kernels.Conv {
	g := c.g
	return kernels.Conv{N: int32(n), C: int32(channels), H: int32(g.H), W: int32(g.W),
		KH: int32(g.KernelH), KW: int32(g.KernelW), SH: int32(g.StrideH), SW: int32(g.StrideW),
		PH: int32(g.PadH), PW: int32(g.PadW), DH: int32(g.DilationH), DW: int32(g.DilationW),
		OH: int32(g.OutH), OW: int32(g.OutW), ImageStride: int32(c.imageLen)}
}

// dnn is the geometry cuDNN takes.
func (c conv) dnn(tf32 bool) driver.Conv {
	g := c.g
	return driver.Conv{N: g.N, C: g.C, H: g.H, W: g.W, K: g.Cout, KH: g.KernelH, KW: g.KernelW,
		StrideH: g.StrideH, StrideW: g.StrideW, PadH: g.PadH, PadW: g.PadW,
		DilationH: g.DilationH, DilationW: g.DilationW, Groups: g.Groups, TF32: tf32}
}

// chunk is how many images' patch matrices fit in colLimit.
func (c conv) chunk() int {
	per := c.cg * c.kk * c.ohw
	return max(1, min(c.g.N, colLimit/max(per, 1)))
}

// Conv2d implements backend.Backend: direct kernels for depthwise
// convolutions, cuDNN when loaded, else im2col + cuBLAS per group.
func (b *Backend) Conv2d(a backend.ConvArgs) {
	const k = "Conv2d"
	c := newConv(k, a.Geometry)
	x := b.f32(k, "X", a.X, c.nx)
	w := b.f32(k, "W", a.W, c.nw)
	bias := b.f32(k, "Bias", a.Bias, c.g.Cout)
	y := b.f32(k, "Y", a.Y, c.ny)
	if a.X == nil || a.W == nil || a.Y == nil {
		backend.Fail(Name, k, "X, W and Y are required")
	}
	if c.g.N == 0 {
		return
	}
	switch {
	case c.depthwise():
		b.launch(k, "gidedge_depthwise_forward", elementwise(c.ny), ptr(y), ptr(x), ptr(w), ptr(bias), c.kernel(c.g.N, c.g.C).Arg())
		return
	case b.dnn != nil:
		if err := b.dnn.ConvForward(b.stream, c.dnn(b.tf32), x, w, y, 0); err != nil {
			b.deviceFail(k, err)
		}
		if bias != 0 {
			shape := []int{c.g.N, c.g.Cout, c.ohw}
			dense := backend.DenseStrides(shape)
			l := layout(k, shape, dense, dense, []int{0, 1, 0})
			b.launch(k, "gidedge_binary", elementwise(c.ny), ptr(y), ptr(y), ptr(bias), i32(kernels.BinaryAdd), f32(0), l.Arg())
		}
		return
	}
	var beta float32
	if bias != 0 {
		// The GEMMs add onto the bias, broadcast into Y first.
		shape := []int{c.g.N, c.g.Cout, c.ohw}
		l := layout(k, shape, backend.DenseStrides(shape), []int{0, 1, 0})
		b.launch(k, "gidedge_strided_copy", elementwise(c.ny), ptr(y), ptr(bias), f32(0), l.Arg())
		beta = 1
	}
	g := c.g
	chunk := c.chunk()
	var col *Buffer
	if !c.pointwise() {
		col = b.Alloc(backend.Float32, chunk*c.cg*c.kk*c.ohw).(*Buffer)
		defer b.Free(col)
	}
	for n0 := 0; n0 < g.N; n0 += chunk {
		nb := min(chunk, g.N-n0)
		for gi := 0; gi < g.Groups; gi++ {
			xg := at(x, n0*c.imageLen+gi*c.cg*g.H*g.W)
			patches, ld, stride := xg, g.H*g.W, c.imageLen
			if col != nil {
				b.launch(k, "gidedge_im2col", elementwise(nb*c.cg*c.kk*c.ohw), ptr(col.mem.Ptr), ptr(xg), c.kernel(nb, c.cg).Arg())
				patches, ld, stride = col.mem.Ptr, c.ohw, c.cg*c.kk*c.ohw
			}
			// Y[n, group] = W[group] · patches[n], for the chunk's images.
			b.gemm(k, driver.Gemm{M: c.coutG, N: c.ohw, K: c.cg * c.kk, Alpha: 1, Beta: beta,
				A: at(w, gi*c.coutG*c.cg*c.kk), LDA: c.cg * c.kk,
				B: patches, LDB: ld, StrideB: int64(stride),
				C: at(y, n0*g.Cout*c.ohw+gi*c.coutG*c.ohw), LDC: c.ohw, StrideC: int64(g.Cout * c.ohw),
				Batch: nb})
		}
	}
}

// Conv2dBackward implements backend.Backend.
func (b *Backend) Conv2dBackward(a backend.ConvBackwardArgs) {
	const k = "Conv2dBackward"
	c := newConv(k, a.Geometry)
	x := b.f32(k, "X", a.X, c.nx)
	w := b.f32(k, "W", a.W, c.nw)
	dy := b.f32(k, "DY", a.DY, c.ny)
	dx, betaX, wantX := b.dest(k, "DX", a.DX, c.nx)
	dw, betaW, wantW := b.dest(k, "DW", a.DW, c.nw)
	db, betaB, wantB := b.dest(k, "DBias", a.DBias, c.g.Cout)
	if (wantX || wantW) && (a.X == nil || a.W == nil || a.DY == nil) || wantB && a.DY == nil {
		backend.Fail(Name, k, "X, W and DY are required")
	}
	g := c.g
	if wantB {
		// Per-channel sums of DY over images and positions.
		if g.N == 0 {
			if betaB == 0 {
				b.fill(k, db, g.Cout, 0)
			}
		} else {
			b.reduce(k, db, 0, dy, kernels.ReduceSum, 1, betaB, []int{g.N, g.Cout, c.ohw}, []bool{true, false, true})
		}
	}
	if g.N == 0 {
		if wantW && betaW == 0 {
			b.fill(k, dw, c.nw, 0)
		}
		return
	}
	switch {
	case c.depthwise():
		geom := c.kernel(g.N, g.C).Arg()
		if wantX {
			b.launch(k, "gidedge_depthwise_backward_data", elementwise(c.nx), ptr(dx), ptr(dy), ptr(w), f32(betaX), geom)
		}
		if wantW {
			b.launch(k, "gidedge_depthwise_backward_filter", kernels.PerBlock(c.nw), ptr(dw), ptr(dy), ptr(x), f32(betaW), geom)
		}
		return
	case b.dnn != nil:
		dc := c.dnn(b.tf32)
		if wantX {
			if err := b.dnn.ConvBackwardData(b.stream, dc, w, dy, dx, betaX); err != nil {
				b.deviceFail(k, err)
			}
		}
		if wantW {
			if err := b.dnn.ConvBackwardFilter(b.stream, dc, x, dy, dw, betaW); err != nil {
				b.deviceFail(k, err)
			}
		}
		return
	}
	if !wantX && !wantW {
		return
	}
	chunk := c.chunk()
	rows := c.cg * c.kk // patch-matrix rows per image and group
	var col, partial *Buffer
	if !c.pointwise() {
		col = b.Alloc(backend.Float32, chunk*rows*c.ohw).(*Buffer)
		defer b.Free(col)
	}
	if wantW {
		partial = b.Alloc(backend.Float32, chunk*c.coutG*rows).(*Buffer)
		defer b.Free(partial)
	}
	for n0 := 0; n0 < g.N; n0 += chunk {
		nb := min(chunk, g.N-n0)
		for gi := 0; gi < g.Groups; gi++ {
			xg := at(x, n0*c.imageLen+gi*c.cg*g.H*g.W)
			dyg := at(dy, n0*g.Cout*c.ohw+gi*c.coutG*c.ohw)
			wg := at(w, gi*c.coutG*rows)
			if wantW {
				patches, ld, stride := xg, g.H*g.W, c.imageLen
				if col != nil {
					b.launch(k, "gidedge_im2col", elementwise(nb*rows*c.ohw), ptr(col.mem.Ptr), ptr(xg), c.kernel(nb, c.cg).Arg())
					patches, ld, stride = col.mem.Ptr, c.ohw, rows*c.ohw
				}
				// One weight gradient per image, DY[n, group]·patches[n]ᵀ,
				// then their sum into DW[group].
				b.gemm(k, driver.Gemm{TransB: true, M: c.coutG, N: rows, K: c.ohw, Alpha: 1,
					A: dyg, LDA: c.ohw, StrideA: int64(g.Cout * c.ohw),
					B: patches, LDB: ld, StrideB: int64(stride),
					C: partial.mem.Ptr, LDC: rows, StrideC: int64(c.coutG * rows),
					Batch: nb})
				beta := betaW
				if n0 > 0 {
					beta = 1
				}
				b.sumRows(k, at(dw, gi*c.coutG*rows), partial.mem.Ptr, nb, c.coutG*rows, beta)
			}
			if wantX {
				dxg := at(dx, n0*c.imageLen+gi*c.cg*g.H*g.W)
				// patches[n] = W[group]ᵀ·DY[n, group], scattered back by
				// col2im; a pointwise convolution writes DX directly.
				gm := driver.Gemm{TransA: true, M: rows, N: c.ohw, K: c.coutG, Alpha: 1,
					A: wg, LDA: rows,
					B: dyg, LDB: c.ohw, StrideB: int64(g.Cout * c.ohw),
					Batch: nb}
				if col == nil {
					gm.C, gm.LDC, gm.StrideC, gm.Beta = dxg, g.H*g.W, int64(c.imageLen), betaX
					b.gemm(k, gm)
					continue
				}
				gm.C, gm.LDC, gm.StrideC = col.mem.Ptr, c.ohw, int64(rows*c.ohw)
				b.gemm(k, gm)
				b.launch(k, "gidedge_col2im", elementwise(nb*c.cg*g.H*g.W), ptr(dxg), ptr(col.mem.Ptr), f32(betaX), c.kernel(nb, c.cg).Arg())
			}
		}
	}
}
