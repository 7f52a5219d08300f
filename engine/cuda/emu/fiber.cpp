#include "fiber.h"

#include <cstdint>
#include <cstring>

namespace {

// aligned_top is the 16-byte-aligned end of a fiber's stack, where its
// first frame goes (both ABIs want 16-byte alignment).
uintptr_t aligned_top(char* stack, std::size_t size) { return (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15); }

}  // namespace

#if defined(__x86_64__)

// gidedge_fiber_switch(void** save, void* load): push the System V
// callee-saved registers and the SSE/x87 control words, store rsp in
// *save, load rsp from load, pop the same, return into the other fiber.
asm(R"(
	.pushsection .text
	.globl gidedge_fiber_switch
	.hidden gidedge_fiber_switch
	.type gidedge_fiber_switch, @function
gidedge_fiber_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	subq $16, %rsp
	stmxcsr 8(%rsp)
	fnstcw (%rsp)
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	ldmxcsr 8(%rsp)
	fldcw (%rsp)
	addq $16, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size gidedge_fiber_switch, .-gidedge_fiber_switch
	.popsection
)");

namespace gidedge_emu {

void fiber_start(FiberContext* ctx, char* stack, std::size_t size, void (*entry)()) {
	uint64_t* sp = reinterpret_cast<uint64_t*>(aligned_top(stack, size));
	*--sp = 0;                                   // entry's return address: never used
	*--sp = reinterpret_cast<uint64_t>(entry);  // where the first switch returns to
	for (int i = 0; i < 6; i++) *--sp = 0;       // rbp rbx r12 r13 r14 r15
	sp -= 2;                                     // control words: the current ones
	uint32_t mxcsr;
	uint16_t fpcw;
	asm volatile("stmxcsr %0" : "=m"(mxcsr));
	asm volatile("fnstcw %0" : "=m"(fpcw));
	std::memcpy(reinterpret_cast<char*>(sp) + 8, &mxcsr, sizeof mxcsr);
	std::memcpy(reinterpret_cast<char*>(sp), &fpcw, sizeof fpcw);
	ctx->sp = sp;
}

}  // namespace gidedge_emu

#elif defined(__aarch64__)

// gidedge_fiber_switch(void** save, void* load): store x19–x30 and d8–d15
// (AAPCS64's callee-saved registers) below sp, store sp in *save, load sp
// from load, restore the same and return to the restored x30.
asm(R"(
	.pushsection .text
	.globl gidedge_fiber_switch
	.hidden gidedge_fiber_switch
	.type gidedge_fiber_switch, %function
gidedge_fiber_switch:
	sub sp, sp, #160
	stp x19, x20, [sp, #0]
	stp x21, x22, [sp, #16]
	stp x23, x24, [sp, #32]
	stp x25, x26, [sp, #48]
	stp x27, x28, [sp, #64]
	stp x29, x30, [sp, #80]
	stp d8, d9, [sp, #96]
	stp d10, d11, [sp, #112]
	stp d12, d13, [sp, #128]
	stp d14, d15, [sp, #144]
	mov x2, sp
	str x2, [x0]
	mov sp, x1
	ldp x19, x20, [sp, #0]
	ldp x21, x22, [sp, #16]
	ldp x23, x24, [sp, #32]
	ldp x25, x26, [sp, #48]
	ldp x27, x28, [sp, #64]
	ldp x29, x30, [sp, #80]
	ldp d8, d9, [sp, #96]
	ldp d10, d11, [sp, #112]
	ldp d12, d13, [sp, #128]
	ldp d14, d15, [sp, #144]
	add sp, sp, #160
	ret
	.size gidedge_fiber_switch, .-gidedge_fiber_switch
	.popsection
)");

namespace gidedge_emu {

void fiber_start(FiberContext* ctx, char* stack, std::size_t size, void (*entry)()) {
	uint64_t* frame = reinterpret_cast<uint64_t*>(aligned_top(stack, size) - 160);
	std::memset(frame, 0, 160);
	frame[11] = reinterpret_cast<uint64_t>(entry);  // x30: where the first switch returns to
	ctx->sp = frame;
}

}  // namespace gidedge_emu

#else

#include <ucontext.h>

namespace gidedge_emu {

void fiber_start(FiberContext* ctx, char* stack, std::size_t size, void (*entry)()) {
	ucontext_t* uc = static_cast<ucontext_t*>(ctx->impl);
	if (uc == nullptr) ctx->impl = uc = new ucontext_t;
	getcontext(uc);
	uc->uc_stack.ss_sp = stack;
	uc->uc_stack.ss_size = size;
	uc->uc_link = nullptr;
	makecontext(uc, entry, 0);
}

void fiber_switch(FiberContext* from, FiberContext* to) {
	if (from->impl == nullptr) from->impl = new ucontext_t;
	swapcontext(static_cast<ucontext_t*>(from->impl), static_cast<ucontext_t*>(to->impl));
}

}  // namespace gidedge_emu

#endif

#if defined(__x86_64__) || defined(__aarch64__)

extern "C" void gidedge_fiber_switch(void** save, void* load);

void gidedge_emu::fiber_switch(FiberContext* from, FiberContext* to) { gidedge_fiber_switch(&from->sp, to->sp); }

#endif
