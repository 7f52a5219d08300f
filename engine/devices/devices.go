// Package devices links every engine backend built into this program —
// cpu (OpenBLAS, cgo), ref (plain Go) and cuda (NVIDIA GPUs, cgo, the
// libraries loaded at run time) — and selects the device the engine runs
// on. Programs import it instead of the drivers, the way a program imports
// image/png for its side effect; tests of packages above the engine import
// it for the same reason.
package devices

import (
	"github.com/gidedge/gidedge/engine/backend"
	_ "github.com/gidedge/gidedge/engine/cpu"  // registers "cpu"
	_ "github.com/gidedge/gidedge/engine/cuda" // registers "cuda" (builds with cgo)
	_ "github.com/gidedge/gidedge/engine/ref"  // registers "ref"
)

// Select makes the named device the engine's default for tensors created
// from now on; an empty name means $GIDEDGE_DEVICE, else "cpu". An unknown
// or unavailable device is an error that lists the devices this build has
// and why the others cannot be used.
func Select(name string) (backend.Backend, error) {
	if name == "" {
		name = backend.DefaultName()
	}
	return backend.Use(name)
}

// Usage is the help text of a --device flag.
const Usage = "device the engine runs on: cpu (OpenBLAS), ref (plain Go reference) or cuda (NVIDIA GPU; GIDEDGE_CUDA_DEVICE picks the GPU); default $" + backend.EnvDevice + ", else cpu"
