package hostinfo

import (
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeELFHeader writes a 64-bit little-endian ELF header for machine, which
// is all debug/elf needs to report the machine, and returns a symlink to it
// standing in for /proc/self/task/PID/exe.
func writeELFHeader(t *testing.T, machine elf.Machine) string {
	t.Helper()
	dir := t.TempDir()
	hdr := make([]byte, 64)
	copy(hdr, elf.ELFMAG)
	hdr[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(hdr[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(hdr[18:], uint16(machine))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(elf.EV_CURRENT))
	binary.LittleEndian.PutUint16(hdr[52:], 64) // e_ehsize
	exe := filepath.Join(dir, "qemu-aarch64-static")
	if err := os.WriteFile(exe, hdr, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "exe")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
}

const (
	x86Cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse2 avx2\n"
	armCpuinfo = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd42\n"
)

func TestDetectEmulation(t *testing.T) {
	tests := []struct {
		name     string
		goarch   string
		files    map[string]string
		exe      elf.Machine // 0: no readable exe link
		emulated bool
		host     string
		evidence []string
	}{
		{"native amd64", "amd64", map[string]string{"/proc/sys/kernel/arch": "x86_64\n", "/proc/cpuinfo": x86Cpuinfo}, elf.EM_X86_64, false, "", nil},
		{"native arm64 (Jetson)", "arm64", map[string]string{"/proc/sys/kernel/arch": "aarch64\n", "/proc/cpuinfo": armCpuinfo}, elf.EM_AARCH64, false, "", nil},
		{"32-bit arm on a 64-bit kernel", "arm", map[string]string{"/proc/sys/kernel/arch": "aarch64\n", "/proc/cpuinfo": armCpuinfo}, elf.EM_AARCH64, false, "", nil},
		{"qemu 7.2, explicit call", "arm64", map[string]string{"/proc/sys/kernel/arch": "x86_64\n", "/proc/cpuinfo": x86Cpuinfo}, elf.EM_X86_64, true, "x86_64",
			[]string{"kernel is x86_64", "ELF machine x86-64", "describes an x86 CPU"}},
		// The sysroot serves an arm64 cpuinfo to keep ONNX Runtime alive, and
		// an old kernel has no arch sysctl: the exe link still tells.
		{"emulated cpuinfo, no arch sysctl", "arm64", map[string]string{"/proc/cpuinfo": armCpuinfo}, elf.EM_X86_64, true, "x86-64",
			[]string{"ELF machine x86-64"}},
		// binfmt_misc without the credentials flag: the exe is the program
		// itself, the kernel arch gives it away.
		{"binfmt, program as exe", "arm64", map[string]string{"/proc/sys/kernel/arch": "x86_64\n", "/proc/cpuinfo": armCpuinfo}, elf.EM_AARCH64, true, "x86_64",
			[]string{"kernel is x86_64"}},
		{"nothing readable", "arm64", nil, 0, false, "", nil},
		{"unknown architecture", "mips64", map[string]string{"/proc/sys/kernel/arch": "x86_64\n"}, elf.EM_X86_64, false, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "missing")
			if tc.exe != 0 {
				exe = writeELFHeader(t, tc.exe)
			}
			e := detectEmulation(tc.goarch, files(tc.files), exe)
			if e.Emulated != tc.emulated || e.Host != tc.host || e.Program != tc.goarch {
				t.Fatalf("got %+v, want emulated=%v host %q", e, tc.emulated, tc.host)
			}
			if len(e.Evidence) != len(tc.evidence) {
				t.Fatalf("evidence %q, want %d lines matching %q", e.Evidence, len(tc.evidence), tc.evidence)
			}
			for i, want := range tc.evidence {
				if !strings.Contains(e.Evidence[i], want) {
					t.Errorf("evidence[%d] = %q, want it to mention %q", i, e.Evidence[i], want)
				}
			}
			if s := e.String(); (s != "") != tc.emulated {
				t.Errorf("String() = %q with emulated=%v", s, tc.emulated)
			}
		})
	}
}

func TestEmulationString(t *testing.T) {
	e := detectEmulation("arm64", files(map[string]string{"/proc/sys/kernel/arch": "x86_64"}), writeELFHeader(t, elf.EM_X86_64))
	s := e.String()
	for _, want := range []string{"arm64 program under qemu-aarch64-static on x86_64", "/proc/sys/kernel/arch"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}

// The tests themselves run natively; the emulated run is checked end to end
// by cmd/gidedge's emulated test under qemu.
func TestDetectEmulationHere(t *testing.T) {
	if e := DetectEmulation(); e.Emulated {
		t.Fatalf("a native test binary reports emulation: %s", e)
	}
}

func TestCpuinfoFamily(t *testing.T) {
	for text, want := range map[string]string{x86Cpuinfo: "x86", armCpuinfo: "arm", "": "", "garbage\nno colon": ""} {
		if got := cpuinfoFamily([]byte(text)); got != want {
			t.Errorf("cpuinfoFamily(%q) = %q, want %q", text, got, want)
		}
	}
}
