//go:build !cgo

package dynlib

import (
	"errors"
	"unsafe"
)

// ErrNoCgo is returned by every Open of a binary built without cgo, which
// cannot load native libraries.
var ErrNoCgo = errors.New("dynlib: built without cgo (CGO_ENABLED=0), so native libraries cannot be loaded")

// Library is an open shared library; without cgo there are none.
type Library struct{}

// Open fails: see ErrNoCgo.
func Open(...string) (*Library, error) { return nil, ErrNoCgo }

// OpenGlobal fails: see ErrNoCgo.
func OpenGlobal(...string) (*Library, error) { return nil, ErrNoCgo }

// Name is empty.
func (*Library) Name() string { return "" }

// Path is empty.
func (*Library) Path() string { return "" }

// Handle is nil.
func (*Library) Handle() unsafe.Pointer { return nil }

// Symbol fails: see ErrNoCgo.
func (*Library) Symbol(string) (unsafe.Pointer, error) { return nil, ErrNoCgo }
