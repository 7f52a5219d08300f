package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gidedge/gidedge/internal/dynlib"
)

// EnvLibs names folders (colon-separated) searched for the CUDA libraries
// before the standard places.
const EnvLibs = "GIDEDGE_CUDA_LIBS"

// Config says where to look for the CUDA libraries.
type Config struct {
	// Dirs are searched first, in order.
	Dirs []string
	// Exclusive limits the search to Dirs: no Python environments, no
	// /usr/local/cuda, no loader path. Tests use it to make a library
	// missing on purpose.
	Exclusive bool
}

// DefaultConfig searches the folders of GIDEDGE_CUDA_LIBS first, then the
// standard places.
func DefaultConfig() Config {
	var c Config
	for _, d := range strings.Split(os.Getenv(EnvLibs), ":") {
		if d != "" {
			c.Dirs = append(c.Dirs, d)
		}
	}
	return c
}

// fixedDirs are the standard places after Python environments: the CUDA
// toolkit, the driver folder NVIDIA's container runtime mounts, and
// JetPack's driver folder.
var fixedDirs = []string{
	"/usr/local/cuda/lib64",
	"/usr/local/cuda/targets/x86_64-linux/lib",
	"/usr/local/cuda/targets/sbsa-linux/lib",
	"/usr/local/cuda/targets/aarch64-linux/lib",
	"/usr/local/nvidia/lib64",
	"/usr/lib/aarch64-linux-gnu/tegra",
}

// SearchDirs lists the folders searched, in order: Dirs, then (unless
// Exclusive) every site-packages/nvidia/*/lib of the Python environments
// found (the pip wheels PyTorch and JAX install: nvidia/cu13/lib,
// nvidia/cublas/lib, nvidia/cudnn/lib, …), then the standard places. Only
// folders that exist are listed. The loader's own search (LD_LIBRARY_PATH,
// ld.so.cache) comes last and is not listed.
func (c Config) SearchDirs() []string {
	dirs := slices.Clone(c.Dirs)
	if !c.Exclusive {
		dirs = append(dirs, pythonLibDirs()...)
		dirs = append(dirs, fixedDirs...)
	}
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || slices.Contains(out, d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// pythonLibDirs finds the nvidia/*/lib folders of Python environments: the
// active virtualenv or conda prefix, each python3 on PATH (its prefix is
// bin/.., without resolving symlinks, which is how venvs work), the user's
// ~/.local, and /usr/local.
func pythonLibDirs() []string {
	var prefixes []string
	for _, env := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := os.Getenv(env); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		for _, exe := range []string{"python3", "python"} {
			if st, err := os.Stat(filepath.Join(d, exe)); err == nil && !st.IsDir() {
				prefixes = append(prefixes, filepath.Dir(filepath.Clean(d)))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		prefixes = append(prefixes, filepath.Join(home, ".local"))
	}
	prefixes = append(prefixes, "/usr/local", "/usr")
	var out []string
	for _, p := range prefixes {
		for _, pattern := range []string{"lib/python3*/site-packages/nvidia/*/lib", "lib/python3*/dist-packages/nvidia/*/lib"} {
			m, _ := filepath.Glob(filepath.Join(p, pattern))
			slices.Sort(m)
			for _, d := range m {
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// LibraryInfo says whether one library was found, where, and its version.
type LibraryInfo struct {
	Name    string   // what it is: "CUDA driver", "cuBLAS", …
	Want    []string // the file names looked for, preferred first
	Path    string   // the file loaded; empty when missing
	Version string   // e.g. "13.0" or "9.10.2"; empty when unknown
	Err     error    // why it is missing or unusable
	Install string   // what to install when it is missing
	lib     *dynlib.Library
	tried   bool // loading was attempted (once per process, except the driver)
}

// Found reports whether the library loaded.
func (l *LibraryInfo) Found() bool { return l.lib != nil }

// File is the loaded file's base name, or the preferred name when missing.
func (l *LibraryInfo) File() string {
	if l.Path != "" {
		return filepath.Base(l.Path)
	}
	if len(l.Want) > 0 {
		return l.Want[0]
	}
	return l.Name
}

// libraries are the process's CUDA libraries: the C dispatch tables are
// process-wide, so each library is loaded (or found missing) at most once
// per process and shared by every Driver.
type libraries struct {
	mu                                  sync.Mutex
	CUDA, NVML, CUBLAS, CUBLASLt, CUDNN LibraryInfo
}

var loaded = &libraries{
	CUDA: LibraryInfo{Name: "CUDA driver", Want: []string{"libcuda.so.1"},
		Install: "install the NVIDIA driver (it provides libcuda.so.1; on a Jetson, JetPack does), or start the container with GPU access (--gpus all)"},
	NVML: LibraryInfo{Name: "NVML", Want: []string{"libnvidia-ml.so.1"},
		Install: "comes with the NVIDIA driver; only the driver's version string needs it"},
	CUBLAS: LibraryInfo{Name: "cuBLAS",
		Install: "pip install nvidia-cublas (CUDA 13) or nvidia-cublas-cu12 (CUDA 12) into a Python environment, or install the CUDA toolkit (/usr/local/cuda/lib64); on a Jetson, JetPack ships it; or set GIDEDGE_CUDA_LIBS to the folder holding it"},
	CUBLASLt: LibraryInfo{Name: "cuBLASLt",
		Install: "comes with cuBLAS (same wheel or toolkit)"},
	CUDNN: LibraryInfo{Name: "cuDNN", Want: []string{"libcudnn.so.9"},
		Install: "optional: pip install nvidia-cudnn-cu13 (or nvidia-cudnn-cu12); on a Jetson, JetPack ships it; gidedge has its own convolution kernels without it"},
}

// search opens the first of names found in cfg's folders (each folder tried
// for every name before the next folder), then, unless cfg is Exclusive, on
// the loader's own path. global loads with RTLD_GLOBAL. prepare, when not
// nil, runs before a file is opened from a folder, to load its
// dependencies from the same folder. The error says where it looked and
// why files it found did not load.
func search(cfg Config, names []string, global bool, prepare func(dir string)) (*dynlib.Library, error) {
	open := dynlib.Open
	if global {
		open = dynlib.OpenGlobal
	}
	dirs := cfg.SearchDirs()
	var failures []string
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if prepare != nil {
				prepare(d)
			}
			lib, err := open(p)
			if err == nil {
				return lib, nil
			}
			failures = append(failures, err.Error())
		}
	}
	where := strings.Join(dirs, ", ")
	if !cfg.Exclusive {
		if lib, err := open(names...); err == nil {
			return lib, nil
		}
		if where != "" {
			where += " and "
		}
		where += "the loader's path"
	}
	if where == "" {
		where = "no folder (none of the configured folders exists)"
	}
	if len(failures) > 0 {
		return nil, &searchError{msg: fmt.Sprintf("%s found in %s but could not be loaded: %s", strings.Join(names, " or "), where, strings.Join(failures, "; ")), broken: true}
	}
	return nil, &searchError{msg: fmt.Sprintf("%s not found in %s", strings.Join(names, " or "), where)}
}

// searchError says where a library was looked for; broken means a file was
// found but dlopen refused it (wrong architecture, a missing dependency).
type searchError struct {
	msg    string
	broken bool
}

func (e *searchError) Error() string { return e.msg }

// installHint is what to do about a failed search: install the library, or
// repair the one found.
func installHint(err error, install string) string {
	if se, ok := err.(*searchError); ok && se.broken {
		return "a copy was found but does not load (see the loader's message): repair or reinstall it, or point GIDEDGE_CUDA_LIBS at a working one"
	}
	return install
}
