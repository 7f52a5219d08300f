// Package dynlib opens shared libraries with dlopen without linking against
// them, so one binary can report and use optional native libraries (the
// CUDA driver, cuBLAS, cuDNN) on machines that have them and run without
// them elsewhere. Built without cgo, Open always fails with ErrNoCgo.
package dynlib
