package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseCPUInfo(t *testing.T) {
	cases := []struct {
		file, arch              string
		model, path             string
		avx512, vnni, saturates bool
	}{
		{"xeon.txt", "amd64", "Intel(R) Xeon(R) Processor", "avx512-vnni", true, true, false},
		{"epyc.txt", "amd64", "AMD EPYC 7B13", "avx2 (16-bit pair sums, may saturate)", false, false, true},
		{"jetson.txt", "arm64", "NVIDIA Jetson Orin Nano Developer Kit", "arm64 dotprod", false, false, false},
		{"oldarm.txt", "arm", "Freescale i.MX 6Quad", "generic", false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c := ParseCPUInfo(string(text), tc.arch, 4)
			if c.Model != tc.model || c.Arch != tc.arch || c.Cores != 4 {
				t.Errorf("model %q arch %q cores %d, want %q %q 4", c.Model, c.Arch, c.Cores, tc.model, tc.arch)
			}
			if c.AVX512() != tc.avx512 || c.VNNI() != tc.vnni || c.Saturates() != tc.saturates || c.Int8Path() != tc.path {
				t.Errorf("avx512 %v vnni %v saturates %v path %q, want %v %v %v %q",
					c.AVX512(), c.VNNI(), c.Saturates(), c.Int8Path(), tc.avx512, tc.vnni, tc.saturates, tc.path)
			}
			if len(c.Flags) == 0 {
				t.Error("no flags parsed")
			}
		})
	}
}

func TestParseCPUInfoEmpty(t *testing.T) {
	c := ParseCPUInfo("", "riscv64", 1)
	if c.Model != "riscv64" || len(c.Flags) != 0 || c.VNNI() || c.Int8Path() != "generic" {
		t.Errorf("empty cpuinfo gave %+v", c)
	}
}

func TestReadCPUOnThisMachine(t *testing.T) {
	c := ReadCPU()
	if c.Model == "" || c.Cores < 1 || c.Arch == "" {
		t.Errorf("ReadCPU() = %+v, want a model, an architecture and at least one core", c)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, name := range []string{"xeon.txt", "epyc.txt", "jetson.txt", "oldarm.txt"} {
		text, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(text))
	}
	f.Fuzz(func(t *testing.T, text string) {
		c := ParseCPUInfo(text, "amd64", 2)
		if c.Model == "" {
			t.Error("empty model name")
		}
		for i := 1; i < len(c.Flags); i++ {
			if c.Flags[i-1] >= c.Flags[i] {
				t.Fatalf("flags not sorted and unique: %q", c.Flags)
			}
		}
	})
}
