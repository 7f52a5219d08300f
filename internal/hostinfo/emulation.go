package hostinfo

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Emulation says whether this process runs under a user-mode emulator (such
// as qemu-user running an arm64 build on an x86-64 machine) and how that was
// found out. Timings taken under emulation say nothing about the hardware the
// program was built for.
type Emulation struct {
	Emulated bool
	Program  string   // the architecture the program was built for (GOARCH)
	Host     string   // the host's architecture, as its kernel names it, when known
	Emulator string   // path of the emulator executable, when known
	Evidence []string // one line per observation that found a foreign host
}

// String is one line for reports: empty when the process runs natively.
func (e Emulation) String() string {
	if !e.Emulated {
		return ""
	}
	name := "an emulator"
	if e.Emulator != "" {
		name = filepath.Base(e.Emulator)
	}
	host := e.Host
	if host == "" {
		host = "another architecture"
	}
	return fmt.Sprintf("%s program under %s on %s (%s)", e.Program, name, host, strings.Join(e.Evidence, "; "))
}

// DetectEmulation looks at what an emulator cannot hide from the program it
// runs, without trusting flags or uname (which qemu-user rewrites):
//
//   - /proc/sys/kernel/arch, the kernel's own architecture;
//   - the executable of the main thread, read through /proc/self/task/PID/exe
//     (qemu-user intercepts /proc/self/exe, not this path): under qemu it is
//     the emulator, an ELF file for the host's machine;
//   - /proc/cpuinfo, when it describes another architecture's CPU (qemu 7.2
//     passes the host's through unchanged).
func DetectEmulation() Emulation {
	return detectEmulation(runtime.GOARCH, os.ReadFile, fmt.Sprintf("/proc/self/task/%d/exe", os.Getpid()))
}

// nativeHosts are the ELF machines and kernel architecture names each GOARCH
// runs on natively (a 64-bit kernel runs its 32-bit siblings without help).
var nativeHosts = map[string]struct {
	machines []elf.Machine
	kernels  []string
}{
	"amd64":   {[]elf.Machine{elf.EM_X86_64}, []string{"x86_64"}},
	"386":     {[]elf.Machine{elf.EM_386, elf.EM_X86_64}, []string{"x86_64", "i386", "i486", "i586", "i686"}},
	"arm64":   {[]elf.Machine{elf.EM_AARCH64}, []string{"aarch64", "arm64"}},
	"arm":     {[]elf.Machine{elf.EM_ARM, elf.EM_AARCH64}, []string{"aarch64", "armv7l", "armv6l", "armv8l", "arm"}},
	"riscv64": {[]elf.Machine{elf.EM_RISCV}, []string{"riscv64"}},
	"ppc64le": {[]elf.Machine{elf.EM_PPC64}, []string{"ppc64le"}},
	"s390x":   {[]elf.Machine{elf.EM_S390}, []string{"s390x"}},
}

// cpuinfoFamily names the architecture family a /proc/cpuinfo text describes
// from keys only one family uses: "x86", "arm", or "" when it cannot tell.
func cpuinfoFamily(text []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		key, _, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "vendor_id", "cpu family":
			return "x86"
		case "CPU implementer", "CPU architecture":
			return "arm"
		}
	}
	return ""
}

func goarchFamily(goarch string) string {
	switch goarch {
	case "amd64", "386":
		return "x86"
	case "arm64", "arm":
		return "arm"
	}
	return ""
}

func detectEmulation(goarch string, readFile func(string) ([]byte, error), mainThreadExe string) Emulation {
	e := Emulation{Program: goarch}
	native, known := nativeHosts[goarch]
	if !known {
		return e
	}
	if b, err := readFile("/proc/sys/kernel/arch"); err == nil {
		if arch := strings.TrimSpace(string(b)); arch != "" && !slices.Contains(native.kernels, arch) {
			e.Host = arch
			e.Evidence = append(e.Evidence, "the kernel is "+arch+" (/proc/sys/kernel/arch)")
		}
	}
	if exe, machine, err := elfMachineOf(mainThreadExe); err == nil && !slices.Contains(native.machines, machine) {
		e.Emulator = exe
		e.Evidence = append(e.Evidence, fmt.Sprintf("the process executes %s (ELF machine %s)", exe, machineName(machine)))
		if e.Host == "" {
			e.Host = machineName(machine)
		}
	}
	if b, err := readFile("/proc/cpuinfo"); err == nil {
		if fam := cpuinfoFamily(b); fam != "" && fam != goarchFamily(goarch) {
			e.Evidence = append(e.Evidence, "/proc/cpuinfo describes an "+fam+" CPU")
		}
	}
	e.Emulated = len(e.Evidence) > 0
	return e
}

// elfMachineOf resolves link (a /proc exe link) and reads the ELF machine of
// the file it names.
func elfMachineOf(link string) (string, elf.Machine, error) {
	target, err := os.Readlink(link)
	if err != nil {
		return "", 0, err
	}
	f, err := elf.Open(link)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return target, f.Machine, nil
}

func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_386:
		return "i386"
	case elf.EM_ARM:
		return "arm"
	}
	return strings.TrimPrefix(m.String(), "EM_")
}
