// The CUDA driver simulator's internal interface: what its libcuda.so.1
// exports to its libcublas and libcudnn (streams, memory checks, faults).
//
// The simulator stands in for NVIDIA's libraries in tests: device memory is
// host memory, kernel launches run the emulated kernels (../emu), GEMM and
// convolution are plain reference loops. It proves gidedge's own code
// (argument checks, memory management, stream order, error handling), not
// NVIDIA's, and says so in its device name.
#ifndef GIDEDGE_SIM_H
#define GIDEDGE_SIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gidedge_sim_enqueue runs fn(arg) in order on stream (NULL: the legacy
 * default stream, run at once after the other streams drain). */
int gidedge_sim_enqueue(void* stream, void (*fn)(void* arg), void* arg);

/* gidedge_sim_check reports whether [ptr, ptr+bytes) lies inside one
 * device allocation. */
int gidedge_sim_check(unsigned long long ptr, size_t bytes);

/* gidedge_sim_fault makes the context's error sticky (as a device fault
 * does), logging what happened to stderr. */
void gidedge_sim_fault(int code, const char* what);

/* gidedge_sim_sticky is the sticky error, 0 when none. */
int gidedge_sim_sticky(void);

/* gidedge_sim_current reports whether the calling thread has a current
 * context. */
int gidedge_sim_current(void);

#ifdef __cplusplus
}
#endif

#endif
