// Minimal stackful fibers for the emulation's __syncthreads: a context
// switch saves the callee-saved registers on the current stack and loads
// another stack, with no system call (glibc's swapcontext makes two, which
// dominated the emulation's run time). x86-64 and arm64 have assembly
// switches; other machines fall back to ucontext.
#ifndef GIDEDGE_EMU_FIBER_H
#define GIDEDGE_EMU_FIBER_H

#include <cstddef>

namespace gidedge_emu {

// A fiber's saved stack pointer (or, on the fallback, its context).
struct FiberContext {
	void* sp = nullptr;
	void* impl = nullptr;  // ucontext fallback only
};

// fiber_start prepares ctx to run entry() on [stack, stack+size) at its
// first switch. entry must never return: it ends by switching away.
void fiber_start(FiberContext* ctx, char* stack, std::size_t size, void (*entry)());

// fiber_switch saves the current context into from and resumes to.
void fiber_switch(FiberContext* from, FiberContext* to);

}  // namespace gidedge_emu

#endif
