/* C interface of the kernel emulation (runtime.cpp), used by package emu
 * through cgo and by the driver simulator's cuLaunchKernel. */
#ifndef GIDEDGE_EMU_H
#define GIDEDGE_EMU_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
	GIDEDGE_EMU_OK = 0,
	GIDEDGE_EMU_NOT_FOUND = 1,      /* no kernel of that name */
	GIDEDGE_EMU_BAD_ARGS = 2,       /* argument count or sizes differ from the kernel's */
	GIDEDGE_EMU_BAD_CONFIG = 3,     /* grid or block dimensions out of range */
	GIDEDGE_EMU_BAD_BARRIER = 4,    /* __syncthreads not reached by every thread, or reached in a launch without barrier */
	GIDEDGE_EMU_NO_MEMORY = 5       /* fiber stacks could not be allocated */
};

/* gidedge_emu_launch runs kernel name over grid (gx, gy, gz) × block
 * (bx, by, bz). args[i] points at the value of parameter i. When sizes is
 * not null it holds each argument's byte count and must match the kernel's
 * parameters. barrier must be non-zero for kernels that call __syncthreads:
 * their CUDA threads then run as fibers. Returns a GIDEDGE_EMU_ code;
 * gidedge_emu_error describes the last failure on the calling thread. */
int gidedge_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		       void** args, const unsigned* sizes, int nargs, int barrier);

const char* gidedge_emu_error(void);

/* The registered kernels: count, names, and each one's parameter sizes
 * (gidedge_emu_kernel_params returns the parameter count, -1 if unknown,
 * and writes at most max sizes). */
int gidedge_emu_kernel_count(void);
const char* gidedge_emu_kernel_name(int i);
int gidedge_emu_kernel_params(const char* name, unsigned* sizes, int max);

#ifdef __cplusplus
}
#endif

#endif
