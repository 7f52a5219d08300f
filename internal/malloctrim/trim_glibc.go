//go:build linux && cgo

package malloctrim

/*
#include <malloc.h>
*/
import "C"

func trim() bool { return C.malloc_trim(0) == 1 }
