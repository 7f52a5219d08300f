package cpu

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestOpenBLASUsesTheCPUsVectorUnits checks the kernel choice: on an x86
// CPU with AVX2 or AVX-512, OpenBLAS must not run pre-AVX2 kernels (its own
// detection gives Prescott's for CPU models it does not know).
func TestOpenBLASUsesTheCPUsVectorUnits(t *testing.T) {
	New(1)
	core := OpenBLASCore()
	t.Logf("OpenBLAS core %s; %s", core, OpenBLASCoreChoice())
	if runtime.GOARCH != "amd64" || os.Getenv("OPENBLAS_CORETYPE") != "" || !(cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		return // nothing to choose, or the user chose
	}
	if preSIMDCores[strings.ToLower(core)] {
		t.Errorf("OpenBLAS runs %s kernels on a CPU with AVX2 (AVX-512: %v)", core, cpu.X86.HasAVX512F)
	}
}
