package driver

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"
)

// Dim3 is a grid or block size.
type Dim3 struct{ X, Y, Z uint32 }

func (d Dim3) String() string { return fmt.Sprintf("(%d,%d,%d)", d.X, d.Y, d.Z) }

// D1 is a one-dimensional size.
func D1(x int) Dim3 { return Dim3{X: uint32(x), Y: 1, Z: 1} }

// ArgKind is what a kernel parameter holds.
type ArgKind uint8

// The kinds of kernel parameter.
const (
	ArgPointer ArgKind = iota + 1 // a device address, 8 bytes
	ArgInt32
	ArgFloat32
	ArgInt64
	ArgStruct // a C struct passed by value
)

func (k ArgKind) String() string {
	switch k {
	case ArgPointer:
		return "pointer"
	case ArgInt32:
		return "int32"
	case ArgFloat32:
		return "float32"
	case ArgInt64:
		return "int64"
	case ArgStruct:
		return "struct"
	}
	return fmt.Sprintf("ArgKind(%d)", uint8(k))
}

// Arg is one kernel argument as the driver copies it: its bytes, and its
// kind (and C type name, for structs) so launches can be checked against
// the kernel's parameters.
type Arg struct {
	Kind ArgKind
	Type string // C struct type name for ArgStruct
	val  uint64
	raw  []byte
}

// Pointer passes a device address (0 is C's NULL).
func Pointer(p DevicePtr) Arg { return Arg{Kind: ArgPointer, val: uint64(p)} }

// Int32 passes a C int.
func Int32(v int32) Arg { return Arg{Kind: ArgInt32, val: uint64(uint32(v))} }

// Float32 passes a C float.
func Float32(v float32) Arg { return Arg{Kind: ArgFloat32, val: uint64(math.Float32bits(v))} }

// Int64 passes a C long long.
func Int64(v int64) Arg { return Arg{Kind: ArgInt64, val: uint64(v)} }

// Struct passes a C struct by value: typeName for checks, b its bytes in
// the device's (little-endian) layout.
func Struct(typeName string, b []byte) Arg { return Arg{Kind: ArgStruct, Type: typeName, raw: b} }

// Size is the argument's size in bytes.
func (a Arg) Size() int {
	switch a.Kind {
	case ArgInt32, ArgFloat32:
		return 4
	case ArgStruct:
		return len(a.raw)
	}
	return 8
}

// Value is a pointer, int32 or int64 argument's value, for checks.
func (a Arg) Value() int64 {
	if a.Kind == ArgInt32 {
		return int64(int32(uint32(a.val)))
	}
	return int64(a.val)
}

// appendTo appends the argument's bytes to buf, aligned to 8.
func (a Arg) appendTo(buf []byte) ([]byte, uint32) {
	for len(buf)%8 != 0 {
		buf = append(buf, 0)
	}
	off := uint32(len(buf))
	switch a.Kind {
	case ArgStruct:
		buf = append(buf, a.raw...)
	case ArgInt32, ArgFloat32:
		buf = binary.LittleEndian.AppendUint32(buf, uint32(a.val))
	default:
		buf = binary.LittleEndian.AppendUint64(buf, a.val)
	}
	return buf, off
}

// Pack lays out args as the C side of a launch reads them: each argument's
// bytes at an 8-byte aligned offset.
func Pack(args []Arg) (data []byte, offsets []uint32) {
	data = make([]byte, 0, 16*len(args))
	offsets = make([]uint32, len(args))
	for i, a := range args {
		data, offsets[i] = a.appendTo(data)
	}
	return data, offsets
}

// Module is PTX loaded (and compiled for this GPU) by the driver.
type Module struct {
	c     *Context
	h     unsafe.Pointer
	name  string
	mu    sync.Mutex
	funcs map[string]*Function
}

// LoadModule hands PTX to the driver, which compiles it for the GPU; name
// identifies it in errors. A compile failure carries the driver's log.
func (c *Context) LoadModule(name string, ptx []byte) (*Module, error) {
	if len(ptx) == 0 {
		return nil, argError("cuModuleLoadDataEx", "module %s is empty", name)
	}
	image := make([]byte, len(ptx)+1) // the driver reads a NUL-terminated string
	copy(image, ptx)
	h, log, rc := c.d.native.moduleLoad(c.h, image)
	if rc != 0 {
		detail := name
		if log = strings.TrimSpace(log); log != "" {
			detail += ": " + log
		}
		return nil, c.d.cudaError("cuModuleLoadDataEx", rc, detail)
	}
	return &Module{c: c, h: h, name: name, funcs: map[string]*Function{}}, nil
}

// Function looks up a kernel by its (extern "C") name.
func (m *Module) Function(name string) (*Function, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.funcs[name]; ok {
		return f, nil
	}
	h, rc := m.c.d.native.moduleFunction(m.c.h, m.h, name)
	if err := m.c.d.cudaError("cuModuleGetFunction", rc, name+" in "+m.name); err != nil {
		return nil, err
	}
	f := &Function{m: m, h: h, Name: name}
	m.funcs[name] = f
	return f, nil
}

// Close unloads the module.
func (m *Module) Close() error {
	if m.h == nil {
		return nil
	}
	err := m.c.d.cudaError("cuModuleUnload", m.c.d.native.moduleUnload(m.c.h, m.h), m.name)
	m.h = nil
	return err
}

// Function is one kernel of a module.
type Function struct {
	m    *Module
	h    unsafe.Pointer
	Name string
}

// MaxKernelArgs is the most arguments Launch passes (binding.h's
// GD_MAX_KERNEL_ARGS).
const MaxKernelArgs = 32

// LaunchConfig is a kernel launch's geometry.
type LaunchConfig struct {
	Grid, Block Dim3
	SharedBytes int // dynamic shared memory; gidedge's kernels use none
}

// Check validates the geometry against CUDA's limits for every GPU
// gidedge supports.
func (l LaunchConfig) Check() error {
	g, b := l.Grid, l.Block
	threads := uint64(b.X) * uint64(b.Y) * uint64(b.Z)
	switch {
	case g.X == 0 || g.Y == 0 || g.Z == 0 || b.X == 0 || b.Y == 0 || b.Z == 0:
		return fmt.Errorf("grid %v and block %v must not have a zero dimension", g, b)
	case g.X > math.MaxInt32 || g.Y > 65535 || g.Z > 65535:
		return fmt.Errorf("grid %v exceeds (2³¹−1, 65535, 65535)", g)
	case threads > 1024 || b.Z > 64:
		return fmt.Errorf("block %v has %d threads; at most 1024, and z at most 64", b, threads)
	case l.SharedBytes < 0 || l.SharedBytes > 48<<10:
		return fmt.Errorf("%d bytes of dynamic shared memory; at most 48 KiB without opting in", l.SharedBytes)
	}
	return nil
}

// Launch queues kernel f on s with args (their count and sizes are the
// caller's to match to the kernel; package kernels checks them against the
// kernel's source).
func (s *Stream) Launch(f *Function, cfg LaunchConfig, args ...Arg) error {
	if err := cfg.Check(); err != nil {
		return argError("cuLaunchKernel", "%s: %v", f.Name, err)
	}
	if len(args) > MaxKernelArgs {
		return argError("cuLaunchKernel", "%s: %d arguments, at most %d", f.Name, len(args), MaxKernelArgs)
	}
	data, offsets := Pack(args)
	rc := s.c.d.native.launch(s.c.h, f.h, cfg.Grid, cfg.Block, uint32(cfg.SharedBytes), s.h, data, offsets)
	return s.c.d.cudaError("cuLaunchKernel", rc, f.Name)
}
