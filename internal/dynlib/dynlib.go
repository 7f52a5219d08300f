//go:build cgo

package dynlib

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>

static void* gidedge_dlopen(const char* name, int global) {
	return dlopen(name, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
}
static const char* gidedge_dlerror(void) { return dlerror(); }
static const char* gidedge_dlpath(void* handle) {
	struct link_map* lm = NULL;
	if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) return NULL;
	return lm->l_name;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Library is an open shared library. Libraries are never closed: the
// native code they hold may have threads and callbacks that outlive any Go
// object.
type Library struct {
	name   string
	path   string
	handle unsafe.Pointer
}

// Open loads the first of names that dlopen accepts (a path, or a bare
// file name looked up on the loader's path) with its symbols private to it;
// the error lists every name tried with dlopen's reason for the last one.
func Open(names ...string) (*Library, error) { return open(false, names) }

// OpenGlobal is Open with the library's symbols made available to libraries
// loaded after it (RTLD_GLOBAL): for a dependency, such as cuBLASLt under
// cuBLAS, loaded ahead from a folder the loader would not search.
func OpenGlobal(names ...string) (*Library, error) { return open(true, names) }

func open(global bool, names []string) (*Library, error) {
	var last string
	g := C.int(0)
	if global {
		g = 1
	}
	for _, n := range names {
		cn := C.CString(n)
		h := C.gidedge_dlopen(cn, g)
		C.free(unsafe.Pointer(cn))
		if h != nil {
			l := &Library{name: n, path: n, handle: h}
			if p := C.gidedge_dlpath(h); p != nil && C.GoString(p) != "" {
				l.path = C.GoString(p)
			}
			return l, nil
		}
		if e := C.gidedge_dlerror(); e != nil {
			last = C.GoString(e)
		}
	}
	return nil, fmt.Errorf("dynlib: none of %v could be loaded: %s", names, last)
}

// Name is the name the library was opened by.
func (l *Library) Name() string { return l.name }

// Path is the file the loader actually opened (resolved through the
// loader's search for bare names).
func (l *Library) Path() string { return l.path }

// Handle is dlopen's handle, for C code that resolves its own symbols.
func (l *Library) Handle() unsafe.Pointer { return l.handle }

// Symbol returns the address of a symbol.
func (l *Library) Symbol(name string) (unsafe.Pointer, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	p := C.dlsym(l.handle, cn)
	if p == nil {
		return nil, fmt.Errorf("dynlib: %s has no symbol %s", l.path, name)
	}
	return p, nil
}
