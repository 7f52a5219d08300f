package cpu

/*
#cgo LDFLAGS: -lopenblas
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char* openblas_get_corename(void);

// gidedge_openblas_force_core re-runs the kernel selection of an OpenBLAS
// built with DYNAMIC_ARCH, as if OPENBLAS_CORETYPE had been set when the
// library loaded. Both entry points are looked up at run time, so a
// library without them (a single-architecture build) is left alone: it
// returns 0 then, 1 after a switch.
static int gidedge_openblas_force_core(const char* core) {
	void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
	void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
	if (quit == NULL || init == NULL) {
		return 0;
	}
	if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) {
		return 0;
	}
	quit();
	init();
	unsetenv("OPENBLAS_CORETYPE");
	return 1;
}
*/
import "C"

import (
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// OpenBLAS with DYNAMIC_ARCH picks its kernels by CPU model when it loads.
// A model it does not know (a newer Xeon, or a hypervisor's generic "Intel
// Xeon Processor") falls back to Prescott's SSE3 kernels: on a CPU with
// AVX-512 that makes cblas_sgemm 5–7× slower (11 against 73 GFLOP/s for a
// 1024³ product on two cores). preSIMDCores are the cores OpenBLAS may pick
// that use neither AVX2 nor AVX-512.
var preSIMDCores = map[string]bool{
	"katmai": true, "coppermine": true, "northwood": true, "prescott": true, "banias": true,
	"atom": true, "core2": true, "penryn": true, "dunnington": true, "nehalem": true,
	"sandybridge": true, "athlon": true, "opteron": true, "opteron_sse3": true,
	"barcelona": true, "bobcat": true, "nano": true, "bulldozer": true, "piledriver": true,
}

// coreSwitch records what chooseOpenBLASCore did, for Describe.
var coreSwitch string

// chooseOpenBLASCore moves OpenBLAS to the kernels this CPU can run when
// its own detection settled for pre-AVX2 ones: SkylakeX's with AVX-512
// (F, BW, DQ, VL, and the OS saving their registers), Haswell's with AVX2
// and FMA. A user's OPENBLAS_CORETYPE is respected. It runs once, before
// any BLAS call.
func chooseOpenBLASCore() {
	if runtime.GOARCH != "amd64" || os.Getenv("OPENBLAS_CORETYPE") != "" {
		return
	}
	detected := OpenBLASCore()
	if !preSIMDCores[strings.ToLower(detected)] {
		return
	}
	var want, why string
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL:
		want, why = "SkylakeX", "AVX-512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		want, why = "Haswell", "AVX2"
	default:
		return
	}
	cs := C.CString(want)
	defer C.free(unsafe.Pointer(cs))
	if C.gidedge_openblas_force_core(cs) == 1 && OpenBLASCore() != detected {
		coreSwitch = "OpenBLAS detected " + detected + " kernels; gidedge switched to " + OpenBLASCore() + " for this CPU's " + why
	}
}

// OpenBLASCore is the name of the kernel set OpenBLAS runs (Haswell,
// SkylakeX, Zen, Prescott, …).
func OpenBLASCore() string { return C.GoString(C.openblas_get_corename()) }

// OpenBLASCoreChoice says whether gidedge overrode OpenBLAS's kernel
// choice at start-up, and why; empty when it did not.
func OpenBLASCoreChoice() string { return coreSwitch }
