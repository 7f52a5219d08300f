// Command cudasim builds the CUDA driver simulator (package sim) if its
// sources changed and prints its folder, for GIDEDGE_CUDA_LIBS:
//
//	GIDEDGE_DEVICE=cuda GIDEDGE_CUDA_LIBS=$(go run ./engine/cuda/sim/cmd/cudasim) go test ./engine
//
// runs the engine's tests on the CUDA backend with the kernels emulated on
// the CPU (make test does). It is a simulator, not a GPU.
package main

import (
	"fmt"
	"os"

	"github.com/gidedge/gidedge/engine/cuda/sim"
)

func main() {
	dir, err := sim.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cudasim:", err)
		os.Exit(1)
	}
	fmt.Println(dir)
}
