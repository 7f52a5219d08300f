// Package dynlib probes for shared libraries with dlopen without linking
// against them, so one binary can report (and later load) optional native
// libraries such as the CUDA driver on machines that lack them.
package dynlib

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

static void* gidedge_dlopen(const char* name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
static const char* gidedge_dlerror(void) { return dlerror(); }
typedef int (*cu_int_fn)(int*);
static int gidedge_call_int_out(void* fn, int* out) { return ((cu_int_fn)fn)(out); }
typedef int (*cu_init_fn)(unsigned int);
static int gidedge_call_init(void* fn) { return ((cu_init_fn)fn)(0); }
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Library is an open shared library.
type Library struct {
	name   string
	handle unsafe.Pointer
}

// Open loads the first of names that dlopen accepts; the error lists every
// name tried with dlopen's reason for the last one.
func Open(names ...string) (*Library, error) {
	var last string
	for _, n := range names {
		cn := C.CString(n)
		h := C.gidedge_dlopen(cn)
		C.free(unsafe.Pointer(cn))
		if h != nil {
			return &Library{name: n, handle: h}, nil
		}
		if e := C.gidedge_dlerror(); e != nil {
			last = C.GoString(e)
		}
	}
	return nil, fmt.Errorf("dynlib: none of %v could be loaded: %s", names, last)
}

// Name is the name the library was opened by.
func (l *Library) Name() string { return l.name }

// Symbol returns the address of a symbol.
func (l *Library) Symbol(name string) (unsafe.Pointer, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	p := C.dlsym(l.handle, cn)
	if p == nil {
		return nil, fmt.Errorf("dynlib: %s has no symbol %s", l.name, name)
	}
	return p, nil
}

// CUDADriverVersion loads libcuda.so.1, initialises the driver and returns
// its version as major.minor.
func CUDADriverVersion() (string, error) {
	lib, err := Open("libcuda.so.1", "libcuda.so")
	if err != nil {
		return "", err
	}
	initFn, err := lib.Symbol("cuInit")
	if err != nil {
		return "", err
	}
	if rc := C.gidedge_call_init(initFn); rc != 0 {
		return "", fmt.Errorf("dynlib: cuInit returned CUDA error %d (driver present, no usable GPU?)", int(rc))
	}
	verFn, err := lib.Symbol("cuDriverGetVersion")
	if err != nil {
		return "", err
	}
	var v C.int
	if rc := C.gidedge_call_int_out(verFn, &v); rc != 0 {
		return "", errors.New("dynlib: cuDriverGetVersion failed")
	}
	return fmt.Sprintf("%d.%d", int(v)/1000, (int(v)%1000)/10), nil
}
