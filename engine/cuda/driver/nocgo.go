//go:build !cgo

package driver

// newNative has nothing to offer without cgo: Open reports the backend
// unavailable.
func newNative() native { return nil }
