//go:build !cgo

package cuda

import "github.com/gidedge/gidedge/engine/backend"

func init() {
	backend.Explain(Name, "this gidedge was built without cgo (CGO_ENABLED=0), which the CUDA binding needs: rebuild with cgo")
}
