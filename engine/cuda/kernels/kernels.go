// Package kernels holds gidedge's CUDA kernels: their CUDA C sources
// (*.cu, in the restricted style common.cuh describes), the PTX clang-16
// makes of them for sm_80 (ptx/*.ptx, embedded, built by `make ptx`), and
// the Go side of launching them: each kernel's parameters are read from
// its source and checked against the PTX, so a launch is validated against
// what the GPU will actually receive.
//
// The same sources compile for the host against an emulation header
// (package emu) and inside the driver simulator (package sim), which is how
// every kernel is tested without a GPU.
//
// Tensors are float32, NCHW, addressed by raw device pointers and explicit
// geometry structs (types.go, mirroring types.h); kernels never allocate.
// Element counts must stay below MaxElements.
package kernels

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gidedge/gidedge/engine/cuda/driver"
)

//go:embed *.cu *.cuh *.h
var sources embed.FS

//go:embed ptx/*.ptx
var ptxFiles embed.FS

// Files lists the kernel source files' base names ("conv", "memory", …);
// each is one PTX module.
func Files() []string {
	entries, _ := fs.Glob(sources, "*.cu")
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = strings.TrimSuffix(e, ".cu")
	}
	return out
}

// PTX returns the embedded PTX of one source file.
func PTX(file string) ([]byte, error) {
	b, err := ptxFiles.ReadFile("ptx/" + file + ".ptx")
	if err != nil {
		return nil, fmt.Errorf("kernels: no PTX for %s.cu: run make ptx", file)
	}
	return b, nil
}

// Source returns one embedded source file (e.g. "reduce.cu").
func Source(name string) ([]byte, error) { return sources.ReadFile(name) }

// SourceHash is the SHA-256 of every source file (.cu, .cuh, .h) in name
// order: the stamp scripts/build_ptx.sh writes into the PTX and into the
// emulation.
func SourceHash() string {
	names, _ := fs.Glob(sources, "*")
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		if ext := path.Ext(n); ext != ".cu" && ext != ".cuh" && ext != ".h" {
			continue
		}
		b, _ := sources.ReadFile(n)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PTXStamp is the source hash a PTX file was built from.
func PTXStamp(ptx []byte) string {
	first, _, _ := strings.Cut(string(ptx), "\n")
	return strings.TrimPrefix(first, "// gidedge-source-sha256 ")
}

// Param is one kernel parameter as its source declares it.
type Param struct {
	Name  string         // e.g. "beta"
	CType string         // e.g. "const float*", "int", "gd_layout"
	Kind  driver.ArgKind // how it is passed
	Size  int            // bytes, as the PTX declares it
}

// Spec describes one kernel.
type Spec struct {
	Name    string // e.g. "gidedge_fill"
	File    string // source file base name, e.g. "memory"
	Params  []Param
	Barrier bool // calls __syncthreads: launch with exactly Block threads
}

// Signature is the kernel's C declaration.
func (s *Spec) Signature() string {
	parts := make([]string, len(s.Params))
	for i, p := range s.Params {
		parts[i] = p.CType + " " + p.Name
	}
	return fmt.Sprintf("void %s(%s)", s.Name, strings.Join(parts, ", "))
}

var (
	specsOnce sync.Once
	specs     map[string]*Spec
	specsErr  error
)

// All returns every kernel's spec, or an error when the sources and the PTX
// disagree (a kernel missing from the PTX, parameters of other sizes):
// run make ptx.
func All() ([]*Spec, error) {
	specsOnce.Do(func() { specs, specsErr = parseAll() })
	if specsErr != nil {
		return nil, specsErr
	}
	out := make([]*Spec, 0, len(specs))
	for _, s := range specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Spec) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Lookup returns one kernel's spec.
func Lookup(name string) (*Spec, error) {
	if _, err := All(); err != nil {
		return nil, err
	}
	s, ok := specs[name]
	if !ok {
		return nil, fmt.Errorf("kernels: no kernel named %q", name)
	}
	return s, nil
}

var (
	kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(([^)]*)\)`)
	ptxEntry   = regexp.MustCompile(`\.entry (\w+)\(([^)]*)\)`)
	ptxParam   = regexp.MustCompile(`\.param (?:\.align \d+ )?\.(\w+) \w+(?:\[(\d+)\])?`)
)

// structSizes are the Go mirrors' sizes of types.h's structs.
var structSizes = map[string]int{
	"gd_layout": binarySize(Layout{}),
	"gd_reduce": binarySize(Reduce{}),
	"gd_conv":   binarySize(Conv{}),
	"gd_pool":   binarySize(Pool{}),
	"gd_roi":    binarySize(ROI{}),
}

func parseAll() (map[string]*Spec, error) {
	out := map[string]*Spec{}
	for _, file := range Files() {
		src, err := sources.ReadFile(file + ".cu")
		if err != nil {
			return nil, err
		}
		ptx, err := PTX(file)
		if err != nil {
			return nil, err
		}
		if stamp, want := PTXStamp(ptx), SourceHash(); stamp != want {
			return nil, fmt.Errorf("kernels: ptx/%s.ptx was built from other sources (stamp %.12s, sources %.12s): run make ptx", file, stamp, want)
		}
		entries := map[string][]int{}
		barrier := map[string]bool{}
		locs := ptxEntry.FindAllStringSubmatchIndex(string(ptx), -1)
		for i, loc := range locs {
			name := string(ptx[loc[2]:loc[3]])
			var sizes []int
			for _, m := range ptxParam.FindAllStringSubmatch(string(ptx[loc[4]:loc[5]]), -1) {
				sizes = append(sizes, ptxParamSize(m[1], m[2]))
			}
			entries[name] = sizes
			end := len(ptx)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			barrier[name] = strings.Contains(string(ptx[loc[1]:end]), "bar.sync")
		}
		decls := kernelDecl.FindAllStringSubmatch(string(src), -1)
		if len(decls) != len(entries) {
			return nil, fmt.Errorf("kernels: %s.cu declares %d kernels, ptx/%s.ptx has %d entries: run make ptx", file, len(decls), file, len(entries))
		}
		for _, d := range decls {
			spec := &Spec{Name: d[1], File: file, Barrier: barrier[d[1]]}
			sizes, ok := entries[d[1]]
			if !ok {
				return nil, fmt.Errorf("kernels: %s is in %s.cu but not in its PTX: run make ptx", d[1], file)
			}
			for _, p := range strings.Split(d[2], ",") {
				param, err := parseParam(strings.TrimSpace(p))
				if err != nil {
					return nil, fmt.Errorf("kernels: %s: %w", d[1], err)
				}
				spec.Params = append(spec.Params, param)
			}
			if len(sizes) != len(spec.Params) {
				return nil, fmt.Errorf("kernels: %s has %d parameters in its source, %d in its PTX: run make ptx", d[1], len(spec.Params), len(sizes))
			}
			for i := range spec.Params {
				if spec.Params[i].Size != sizes[i] {
					return nil, fmt.Errorf("kernels: %s parameter %s is %d bytes in Go, %d in the PTX (types.go and types.h disagree)", d[1], spec.Params[i].Name, spec.Params[i].Size, sizes[i])
				}
			}
			if _, dup := out[d[1]]; dup {
				return nil, fmt.Errorf("kernels: %s is defined twice", d[1])
			}
			out[d[1]] = spec
		}
	}
	return out, nil
}

func ptxParamSize(typ, count string) int {
	if count != "" {
		n, _ := strconv.Atoi(count)
		return n
	}
	switch typ {
	case "u64", "s64", "b64", "f64":
		return 8
	case "u16", "s16", "b16", "f16":
		return 2
	case "u8", "s8", "b8":
		return 1
	}
	return 4
}

func parseParam(p string) (Param, error) {
	i := strings.LastIndexAny(p, " *")
	if i < 0 {
		return Param{}, fmt.Errorf("cannot read parameter %q", p)
	}
	param := Param{Name: p[i+1:], CType: strings.TrimSpace(p[:i+1])}
	switch t := strings.TrimPrefix(param.CType, "const "); {
	case strings.HasSuffix(t, "*"):
		param.Kind, param.Size = driver.ArgPointer, 8
	case t == "int":
		param.Kind, param.Size = driver.ArgInt32, 4
	case t == "float":
		param.Kind, param.Size = driver.ArgFloat32, 4
	case structSizes[t] > 0:
		param.Kind, param.Size = driver.ArgStruct, structSizes[t]
		param.CType = t
	default:
		return Param{}, fmt.Errorf("parameter %q has type %q, which gidedge's kernels do not use (pointers, int, float, types.h structs)", param.Name, param.CType)
	}
	return param, nil
}
