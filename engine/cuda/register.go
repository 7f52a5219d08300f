//go:build cgo

package cuda

import "github.com/gidedge/gidedge/engine/backend"

func init() {
	backend.Register(Name, func() (backend.Backend, error) {
		o, err := OptionsFromEnv()
		if err != nil {
			return nil, err
		}
		return Open(o)
	})
}
