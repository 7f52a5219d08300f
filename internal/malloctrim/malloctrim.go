// Package malloctrim hands memory that C code (OpenCV's image buffers, ONNX
// Runtime's temporaries) has freed back to the system. glibc keeps freed
// blocks in its arenas for reuse; after a burst of large decodes an idle
// server would otherwise keep its peak resident size. Trim asks glibc to
// return what it can (malloc_trim); elsewhere it does nothing.
package malloctrim

// Trim returns free C heap memory to the system and reports whether any
// was released. It walks every arena, so call it when idle, not per request.
func Trim() bool { return trim() }
