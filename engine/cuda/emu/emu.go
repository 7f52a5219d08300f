//go:build cgo

// Package emu runs gidedge's CUDA kernels on the CPU: the kernel sources of
// package kernels compiled with the host C++ compiler against emulate.h,
// one block at a time, every CUDA thread of a block in order, or as a
// fiber with a real barrier for kernels that call __syncthreads. It is how
// the kernels are tested without a GPU (and it is what the driver
// simulator of package sim runs on cuLaunchKernel).
//
// Device pointers here are host addresses of memory from Alloc. Launches
// are checked against the kernels' sources exactly as on a GPU
// (kernels.Check), and the emulation checks again that each argument's size
// is the size of the compiled parameter.
package emu

/*
#cgo CXXFLAGS: -std=c++17 -O2 -Wall
#cgo LDFLAGS: -lstdc++
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "emu.h"
#include "../kernels/types.h"

static void emu_write(unsigned long long dst, const void* src, size_t n) { memcpy((void*)(uintptr_t)dst, src, n); }
static void emu_read(void* dst, unsigned long long src, size_t n) { memcpy(dst, (const void*)(uintptr_t)src, n); }
static unsigned long long emu_alloc(size_t n) { return (unsigned long long)(uintptr_t)calloc(1, n); }
static void emu_free(unsigned long long p) { free((void*)(uintptr_t)p); }
static int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		      const unsigned char* data, const unsigned* offsets, const unsigned* sizes, int n, int barrier) {
	void* args[64];
	if (n > 64) return GIDEDGE_EMU_BAD_ARGS;
	for (int i = 0; i < n; i++) args[i] = (void*)(data + offsets[i]);
	return gidedge_emu_launch(name, gx, gy, gz, bx, by, bz, args, sizes, n, barrier);
}
const char* gidedge_emu_sources(void);
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

// Launch runs kernel name to completion on the calling goroutine's thread,
// after kernels.Check.
func Launch(name string, cfg driver.LaunchConfig, args ...driver.Arg) error {
	spec, err := kernels.Check(name, cfg, args)
	if err != nil {
		return err
	}
	return launch(name, cfg, spec.Barrier, args)
}

// LaunchUnchecked skips kernels.Check, so the emulation's own checks (and
// its barrier detection) can be tested.
func LaunchUnchecked(name string, cfg driver.LaunchConfig, barrier bool, args ...driver.Arg) error {
	return launch(name, cfg, barrier, args)
}

func launch(name string, cfg driver.LaunchConfig, barrier bool, args []driver.Arg) error {
	data, offsets := driver.Pack(args)
	sizes := make([]C.uint, len(args))
	for i, a := range args {
		sizes[i] = C.uint(a.Size())
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var dp *C.uchar
	var op, sp *C.uint
	if len(args) > 0 {
		dp = (*C.uchar)(unsafe.Pointer(&data[0]))
		op = (*C.uint)(unsafe.Pointer(&offsets[0]))
		sp = &sizes[0]
	}
	b := C.int(0)
	if barrier {
		b = 1
	}
	g, bl := cfg.Grid, cfg.Block
	rc := C.emu_launch(cn, C.uint(g.X), C.uint(g.Y), C.uint(g.Z), C.uint(bl.X), C.uint(bl.Y), C.uint(bl.Z), dp, op, sp, C.int(len(args)), b)
	if rc != C.GIDEDGE_EMU_OK {
		return fmt.Errorf("emu: %s", C.GoString(C.gidedge_emu_error()))
	}
	return nil
}

// Alloc returns bytes of zeroed host memory standing in for device memory.
func Alloc(bytes int) (driver.DevicePtr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("emu: %d bytes requested", bytes)
	}
	p := C.emu_alloc(C.size_t(bytes))
	if p == 0 {
		return 0, fmt.Errorf("emu: out of memory for %d bytes", bytes)
	}
	return driver.DevicePtr(p), nil
}

// Free releases memory from Alloc.
func Free(p driver.DevicePtr) { C.emu_free(C.ulonglong(p)) }

// Write copies src to p.
func Write[T driver.Element](p driver.DevicePtr, src []T) {
	if len(src) == 0 {
		return
	}
	var zero T
	C.emu_write(C.ulonglong(p), unsafe.Pointer(&src[0]), C.size_t(len(src))*C.size_t(unsafe.Sizeof(zero)))
}

// Read copies from p into dst.
func Read[T driver.Element](dst []T, p driver.DevicePtr) {
	if len(dst) == 0 {
		return
	}
	var zero T
	C.emu_read(unsafe.Pointer(&dst[0]), C.ulonglong(p), C.size_t(len(dst))*C.size_t(unsafe.Sizeof(zero)))
}

// Kernels lists the emulated kernels with their compiled parameter sizes.
func Kernels() map[string][]int {
	out := map[string][]int{}
	for i := 0; i < int(C.gidedge_emu_kernel_count()); i++ {
		name := C.gidedge_emu_kernel_name(C.int(i))
		var sizes [64]C.uint
		n := int(C.gidedge_emu_kernel_params(name, &sizes[0], 64))
		s := make([]int, n)
		for j := range s {
			s[j] = int(sizes[j])
		}
		out[C.GoString(name)] = s
	}
	return out
}

// SourceHash is the kernel-source stamp the emulation was compiled with
// (emu/sources.h, written by scripts/build_ptx.sh).
func SourceHash() string { return C.GoString(C.gidedge_emu_sources()) }

// TypesH returns the values of types.h's macros and the sizes of its
// structs as the C compiler sees them, for comparison with package
// kernels' Go mirrors.
func TypesH() map[string]int {
	return map[string]int{
		"GD_BLOCK":            C.GD_BLOCK,
		"GD_MAX_RANK":         C.GD_MAX_RANK,
		"GD_UNARY_AFFINE":     C.GD_UNARY_AFFINE,
		"GD_UNARY_EXP":        C.GD_UNARY_EXP,
		"GD_UNARY_LOG":        C.GD_UNARY_LOG,
		"GD_UNARY_SQRT":       C.GD_UNARY_SQRT,
		"GD_UNARY_ABS":        C.GD_UNARY_ABS,
		"GD_UNARY_RELU":       C.GD_UNARY_RELU,
		"GD_UNARY_LEAKY_RELU": C.GD_UNARY_LEAKY_RELU,
		"GD_UNARY_SIGMOID":    C.GD_UNARY_SIGMOID,
		"GD_UNARY_SILU":       C.GD_UNARY_SILU,
		"GD_UNARY_HARDSWISH":  C.GD_UNARY_HARDSWISH,
		"GD_UNARY_TANH":       C.GD_UNARY_TANH,
		"GD_UNARY_POW":        C.GD_UNARY_POW,
		"GD_UNARY_CLAMP":      C.GD_UNARY_CLAMP,
		"GD_UNARY_COUNT":      C.GD_UNARY_COUNT,
		"GD_BINARY_ADD":       C.GD_BINARY_ADD,
		"GD_BINARY_SUB":       C.GD_BINARY_SUB,
		"GD_BINARY_MUL":       C.GD_BINARY_MUL,
		"GD_BINARY_DIV":       C.GD_BINARY_DIV,
		"GD_BINARY_MAX":       C.GD_BINARY_MAX,
		"GD_BINARY_MIN":       C.GD_BINARY_MIN,
		"GD_BINARY_COUNT":     C.GD_BINARY_COUNT,
		"GD_REDUCE_SUM":       C.GD_REDUCE_SUM,
		"GD_REDUCE_MAX":       C.GD_REDUCE_MAX,
		"GD_REDUCE_SUMSQ":     C.GD_REDUCE_SUMSQ,
		"GD_REDUCE_COUNT":     C.GD_REDUCE_COUNT,
		"GD_LOSS_BCE_LOGITS":  C.GD_LOSS_BCE_LOGITS,
		"GD_LOSS_L1":          C.GD_LOSS_L1,
		"GD_LOSS_SMOOTH_L1":   C.GD_LOSS_SMOOTH_L1,
		"GD_LOSS_MSE":         C.GD_LOSS_MSE,
		"GD_LOSS_COUNT":       C.GD_LOSS_COUNT,
		"sizeof(gd_layout)":   C.sizeof_gd_layout,
		"sizeof(gd_reduce)":   C.sizeof_gd_reduce,
		"sizeof(gd_conv)":     C.sizeof_gd_conv,
		"sizeof(gd_pool)":     C.sizeof_gd_pool,
		"sizeof(gd_roi)":      C.sizeof_gd_roi,
	}
}
