package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

var (
	// ErrShape is wrapped by every shape error.
	ErrShape = errors.New("engine: shape mismatch")
	// ErrNotFinite is wrapped when a tensor holds NaN or Inf.
	ErrNotFinite = errors.New("engine: non-finite value")
	// ErrDevice is wrapped when an op's inputs live on different devices.
	ErrDevice = errors.New("engine: tensors on different devices")
	// ErrReleased is wrapped when an op is given a tensor whose buffer was
	// handed back by Release or Recycle.
	ErrReleased = errors.New("engine: tensor used after release")
)

// OpError reports a failed op with the shapes it was given.
type OpError struct {
	Op     string
	Shapes [][]int
	Err    error
	Detail string
}

func (e *OpError) Error() string {
	return fmt.Sprintf("engine: %s: %s (shapes %v): %v", e.Op, e.Detail, e.Shapes, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// shapeErr panics with an OpError; ops call it after validating their inputs.
func shapeErr(op, format string, args []any, ts ...*Tensor) {
	panic(&OpError{Op: op, Shapes: shapesOf(ts), Err: ErrShape, Detail: fmt.Sprintf(format, args...)})
}

func check(cond bool, op, format string, args []any, ts ...*Tensor) {
	if !cond {
		shapeErr(op, format, args, ts...)
	}
}

// Guard runs fn and turns a typed panic into a returned error. gidedge's
// packages panic only for programmer errors, and always with a typed error
// value: an *OpError here and in the packages built on the engine, a
// kernel's *backend.Error,
// *geom.LengthError, export's *BuildError. Guard returns such a value
// unchanged. A runtime error (nil dereference, index out of range) or a
// panic with a value that is not an error propagates with its stack trace.
//
// The command line calls Guard once, around the whole command; nothing else
// recovers.
func Guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			var rt runtime.Error
			if !ok || errors.As(e, &rt) {
				panic(r)
			}
			err = e
		}
	}()
	return fn()
}

// CheckFinite returns an error naming what if t holds a NaN or Inf. It
// reads t on the host.
func CheckFinite(what string, t *Tensor) error {
	for i, v := range t.ToHost() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("engine: %s: %w %v at flat index %d of shape %v", what, ErrNotFinite, v, i, t.shape)
		}
	}
	return nil
}
