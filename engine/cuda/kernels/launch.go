package kernels

import (
	"fmt"

	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// MaxGrid caps the blocks of a grid-stride launch: enough to fill any GPU
// gidedge targets several times over; the loops cover the rest.
const MaxGrid = 65535

// Elementwise is the launch geometry of a grid-stride kernel over n
// elements: Block threads per block, one element per thread up to MaxGrid
// blocks.
func Elementwise(n int) driver.LaunchConfig {
	blocks := min(max((n+Block-1)/Block, 1), MaxGrid)
	return driver.LaunchConfig{Grid: driver.D1(blocks), Block: driver.D1(Block)}
}

// PerBlock is the launch geometry of a Barrier kernel that gives each of
// count outputs (rows, channels, taps) one block of Block threads.
func PerBlock(count int) driver.LaunchConfig {
	return driver.LaunchConfig{Grid: driver.D1(min(max(count, 1), MaxGrid)), Block: driver.D1(Block)}
}

// Check validates a launch of kernel name against its source: the
// argument count and kinds, struct types, non-negative int arguments below
// MaxElements, and Block threads for Barrier kernels. It returns the spec.
func Check(name string, cfg driver.LaunchConfig, args []driver.Arg) (*Spec, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("kernels: %s: %w", name, err)
	}
	if s.Barrier && cfg.Block != driver.D1(Block) {
		return nil, fmt.Errorf("kernels: %s synchronises its block and needs block (%d,1,1), got %v", name, Block, cfg.Block)
	}
	if len(args) != len(s.Params) {
		return nil, fmt.Errorf("kernels: %s takes %d arguments (%s), got %d", name, len(s.Params), s.Signature(), len(args))
	}
	for i, a := range args {
		p := s.Params[i]
		if a.Kind != p.Kind || (a.Kind == driver.ArgStruct && a.Type != p.CType) {
			got := a.Kind.String()
			if a.Kind == driver.ArgStruct {
				got = a.Type
			}
			return nil, fmt.Errorf("kernels: %s argument %d (%s %s) given a %s", name, i, p.CType, p.Name, got)
		}
		if a.Size() != p.Size {
			return nil, fmt.Errorf("kernels: %s argument %d (%s) is %d bytes, want %d", name, i, p.Name, a.Size(), p.Size)
		}
		if a.Kind == driver.ArgInt32 && (a.Value() < 0 || a.Value() > MaxElements) {
			return nil, fmt.Errorf("kernels: %s argument %d (%s) is %d, want 0 … %d", name, i, p.Name, a.Value(), MaxElements)
		}
	}
	return s, nil
}

// Set is every kernel loaded into one context.
type Set struct {
	modules []*driver.Module
	funcs   map[string]*driver.Function
}

// Load loads every embedded PTX module into c and resolves every kernel.
func Load(c *driver.Context) (*Set, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	set := &Set{funcs: map[string]*driver.Function{}}
	mods := map[string]*driver.Module{}
	for _, file := range Files() {
		ptx, err := PTX(file)
		if err != nil {
			set.Close()
			return nil, err
		}
		m, err := c.LoadModule(file+".ptx", ptx)
		if err != nil {
			set.Close()
			return nil, err
		}
		set.modules = append(set.modules, m)
		mods[file] = m
	}
	for _, s := range all {
		f, err := mods[s.File].Function(s.Name)
		if err != nil {
			set.Close()
			return nil, err
		}
		set.funcs[s.Name] = f
	}
	return set, nil
}

// Launch checks the arguments (Check) and queues kernel name on s.
func (set *Set) Launch(s *driver.Stream, name string, cfg driver.LaunchConfig, args ...driver.Arg) error {
	if _, err := Check(name, cfg, args); err != nil {
		return err
	}
	return s.Launch(set.funcs[name], cfg, args...)
}

// Close unloads the modules.
func (set *Set) Close() error {
	var first error
	for _, m := range set.modules {
		if err := m.Close(); err != nil && first == nil {
			first = err
		}
	}
	set.modules = nil
	return first
}
