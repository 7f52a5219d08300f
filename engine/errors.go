package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

// ErrShape is the sentinel wrapped by every shape error.
var ErrShape = errors.New("shape mismatch")

// ErrNotFinite is wrapped when a tensor holds NaN or Inf.
var ErrNotFinite = errors.New("non-finite value")

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
	shapes := make([][]int, len(ts))
	for i, t := range ts {
		shapes[i] = t.Shape()
	}
	panic(&OpError{Op: op, Shapes: shapes, Err: ErrShape, Detail: fmt.Sprintf(format, args...)})
}

func check(cond bool, op, format string, args []any, ts ...*Tensor) {
	if !cond {
		shapeErr(op, format, args, ts...)
	}
}

// Guard runs fn and turns a typed panic into a returned error. gidedge's
// packages panic only for programmer errors, and always with a typed error
// value: an *OpError here and in the packages built on the engine,
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

// CheckFinite returns an error naming what if t holds a NaN or Inf.
func CheckFinite(what string, t *Tensor) error {
	for i, v := range t.data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("engine: %s: %w %v at flat index %d of shape %v", what, ErrNotFinite, v, i, t.shape)
		}
	}
	return nil
}
