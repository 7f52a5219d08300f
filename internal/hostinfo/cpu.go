package hostinfo

import (
	"bufio"
	"os"
	"runtime"
	"slices"
	"strings"
)

// CPU is what /proc/cpuinfo and Go say about the processor.
type CPU struct {
	// Model is the processor's name ("Intel(R) Xeon(R) Processor",
	// "NVIDIA Jetson Orin Nano Developer Kit"), or the Go architecture
	// when /proc/cpuinfo names none.
	Model string `json:"model"`
	Arch  string `json:"arch"`  // runtime.GOARCH
	Cores int    `json:"cores"` // logical CPUs (runtime.NumCPU)
	// Flags are the instruction-set flags of the first processor, sorted.
	Flags []string `json:"flags,omitempty"`
}

// modelKeys are the /proc/cpuinfo keys that name the processor, best first.
var modelKeys = []string{"model name", "Model", "Hardware", "Processor"}

// ReadCPU reads /proc/cpuinfo. On a system without it only Arch, Cores and
// a Model equal to Arch are filled.
func ReadCPU() CPU {
	text, _ := os.ReadFile("/proc/cpuinfo")
	return ParseCPUInfo(string(text), runtime.GOARCH, runtime.NumCPU())
}

// ParseCPUInfo reads the text of a /proc/cpuinfo file for a machine of the
// given Go architecture and logical CPU count.
func ParseCPUInfo(text, arch string, cores int) CPU {
	c := CPU{Arch: arch, Cores: cores}
	values := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20) // x86 flag lines run past 4 KiB
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, seen := values[k]; !seen && v != "" {
			values[k] = v // the first processor's value
		}
	}
	for _, k := range modelKeys {
		if v := values[k]; v != "" {
			c.Model = v
			break
		}
	}
	if c.Model == "" {
		c.Model = arch
	}
	flags := values["flags"]
	if flags == "" {
		flags = values["Features"]
	}
	c.Flags = strings.Fields(flags)
	slices.Sort(c.Flags)
	c.Flags = slices.Compact(c.Flags)
	return c
}

// Has reports whether the CPU lists flag (as /proc/cpuinfo spells it).
func (c CPU) Has(flag string) bool {
	_, ok := slices.BinarySearch(c.Flags, flag)
	return ok
}

// AVX512 reports the AVX-512 foundation instructions (x86).
func (c CPU) AVX512() bool { return c.Has("avx512f") }

// VNNI reports an x86 8-bit dot-product instruction (AVX-512 VNNI or
// AVX-VNNI): u8 × s8 products summed straight into 32 bits. Without it the
// AVX2 path (vpmaddubsw) adds pairs of products in 16 bits, which saturates
// when both products are large.
func (c CPU) VNNI() bool { return c.Has("avx512_vnni") || c.Has("avx_vnni") }

// DotProd reports the arm64 8-bit dot-product instructions (SDOT/UDOT).
func (c CPU) DotProd() bool { return c.Has("asimddp") }

// Int8Path names the 8-bit matrix-multiply path ONNX Runtime's kernels take
// on this CPU: "avx512-vnni", "avx-vnni", "avx2 (16-bit pair sums, may
// saturate)", "arm64 dotprod", "arm64 neon" or "generic".
func (c CPU) Int8Path() string {
	switch {
	case c.Has("avx512_vnni"):
		return "avx512-vnni"
	case c.Has("avx_vnni"):
		return "avx-vnni"
	case c.Has("avx2"):
		return "avx2 (16-bit pair sums, may saturate)"
	case c.Arch == "arm64" && c.DotProd():
		return "arm64 dotprod"
	case c.Arch == "arm64":
		return "arm64 neon"
	}
	return "generic"
}

// Saturates reports whether ONNX Runtime's u8 × s8 kernels on this CPU add
// pairs of products in 16 bits (x86 without VNNI), so that full-range int8
// weights can overflow: 2 · 255 · 127 > 32767.
func (c CPU) Saturates() bool {
	return (c.Arch == "amd64" || c.Arch == "386") && !c.VNNI()
}

// Board is the device-tree model of an embedded board ("NVIDIA Jetson Orin
// Nano Developer Kit"), empty on machines without one.
func Board() string {
	b, err := os.ReadFile("/proc/device-tree/model")
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\x00\n ")
}

// LoadAverage is the 1, 5 and 15-minute load average from /proc/loadavg
// ("0.52 0.61 0.70"), empty when unknown.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
