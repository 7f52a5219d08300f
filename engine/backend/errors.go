package backend

import (
	"errors"
	"fmt"
)

// ErrArgument is wrapped by the panics of kernels given invalid arguments.
var ErrArgument = errors.New("backend: invalid kernel argument")

// Error is the panic value of a kernel called with invalid arguments (a
// programmer error: the engine checks shapes before calling kernels).
type Error struct {
	Backend string // "cpu", "ref", …
	Kernel  string // the method, e.g. "Conv2d"
	Detail  string
	Err     error // ErrArgument or ErrDevice
}

func (e *Error) Error() string {
	return fmt.Sprintf("backend: %s: %s: %s: %v", e.Backend, e.Kernel, e.Detail, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Fail panics with an *Error wrapping ErrArgument; backends call it when
// a kernel's arguments do not hold together.
func Fail(backend, kernel, format string, args ...any) {
	panic(&Error{Backend: backend, Kernel: kernel, Detail: fmt.Sprintf(format, args...), Err: ErrArgument})
}
