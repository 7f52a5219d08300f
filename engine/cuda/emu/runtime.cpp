// The emulation runtime: runs an emulated kernel block by block on the
// calling OS thread. Kernels without __syncthreads call the kernel function
// once per CUDA thread in order. Kernels with it run every CUDA thread of a
// block as a fiber (fiber.h) on its own stack; __syncthreads switches back
// to the scheduler, which resumes the next fiber, so no thread passes the
// barrier until all of them have reached it. A thread that exits while
// others wait at a barrier is reported as a divergent barrier, a bug that
// real hardware would turn into a hang or garbage.
#include "emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "emulate.h"
#include "fiber.h"
#include "registry.h"

namespace gidedge_emu {

thread_local dim3 thread_index, block_index, block_dim, grid_dim;

namespace {

struct Kernel {
	const char* name;
	void (*fn)();
	Invoke invoke;
	const unsigned* sizes;
	int count;
};

std::vector<Kernel>& registry() {
	static std::vector<Kernel> r;
	return r;
}

const Kernel* find(const char* name) {
	for (const Kernel& k : registry()) {
		if (std::strcmp(k.name, name) == 0) return &k;
	}
	return nullptr;
}

thread_local std::string last_error;

int fail(int code, const std::string& msg) {
	last_error = msg;
	return code;
}

enum FiberState { kReady, kAtBarrier, kDone };

struct Fiber {
	FiberContext ctx;
	FiberState state;
	dim3 tid;
};

// One block's worth of fibers with their stacks, kept per OS thread and
// reused across blocks and launches.
struct Scheduler {
	FiberContext home;
	std::vector<Fiber> fibers;
	std::vector<char*> stacks;
	Fiber* current = nullptr;
	const Kernel* kernel = nullptr;
	void** args = nullptr;
	bool active = false;        // a fiber launch is running on this thread
	bool stray_barrier = false;  // __syncthreads reached in a launch without barrier
};

thread_local Scheduler sched;

const std::size_t kStack = 64 << 10;
const std::size_t kGuard = 4096;

bool ensure_stacks(std::size_t n) {
	while (sched.stacks.size() < n) {
		void* p = mmap(nullptr, kStack + kGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) return false;
		// A guard page below the stack turns an overflow into a fault
		// instead of silent corruption.
		mprotect(p, kGuard, PROT_NONE);
		sched.stacks.push_back(static_cast<char*>(p));
	}
	return true;
}

// fiber_main runs one CUDA thread's kernel and switches back for good.
void fiber_main() {
	Fiber* f = sched.current;
	sched.kernel->invoke(sched.kernel->fn, sched.args);
	f->state = kDone;
	fiber_switch(&f->ctx, &sched.home);
}

// prepare points fiber f at the start of the kernel on stack.
void prepare(Fiber& f, char* stack) {
	fiber_start(&f.ctx, stack + kGuard, kStack, fiber_main);
	f.state = kReady;
}

int run_block_fibers(unsigned threads) {
	for (unsigned i = 0; i < threads; i++) prepare(sched.fibers[i], sched.stacks[i]);
	for (int round = 0;; round++) {
		unsigned done = 0;
		for (unsigned i = 0; i < threads; i++) {
			Fiber& f = sched.fibers[i];
			if (f.state == kDone) {
				done++;
				continue;
			}
			f.state = kReady;
			thread_index = f.tid;
			sched.current = &f;
			fiber_switch(&sched.home, &f.ctx);
			if (f.state == kDone) done++;
		}
		if (done == threads) return GIDEDGE_EMU_OK;
		if (done > 0) {
			char msg[256];
			std::snprintf(msg, sizeof msg,
				      "%s: %u of %u threads of block (%u,%u,%u) exited while the others wait at __syncthreads number %d (a barrier under a thread-dependent branch)",
				      sched.kernel->name, done, threads, block_index.x, block_index.y, block_index.z, round + 1);
			return fail(GIDEDGE_EMU_BAD_BARRIER, msg);
		}
	}
}

}  // namespace

int add(const char* name, void (*fn)(), Invoke invoke, const unsigned* sizes, int count) {
	registry().push_back(Kernel{name, fn, invoke, sizes, count});
	return static_cast<int>(registry().size());
}

void barrier() {
	if (!sched.active) {
		sched.stray_barrier = true;
		return;
	}
	Fiber* f = sched.current;
	f->state = kAtBarrier;
	fiber_switch(&f->ctx, &sched.home);
}

float atomic_add(float* p, float v) {
	unsigned* u = reinterpret_cast<unsigned*>(p);
	unsigned old = __atomic_load_n(u, __ATOMIC_RELAXED);
	for (;;) {
		float f;
		std::memcpy(&f, &old, sizeof f);
		float sum = f + v;
		unsigned next;
		std::memcpy(&next, &sum, sizeof next);
		if (__atomic_compare_exchange_n(u, &old, next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return f;
	}
}

int atomic_add(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

}  // namespace gidedge_emu

using namespace gidedge_emu;

extern "C" int gidedge_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
				  void** args, const unsigned* sizes, int nargs, int barrier) {
	const Kernel* k = find(name);
	if (!k) return fail(GIDEDGE_EMU_NOT_FOUND, std::string("no emulated kernel named ") + name);
	if (nargs != k->count) {
		return fail(GIDEDGE_EMU_BAD_ARGS, std::string(name) + ": " + std::to_string(nargs) + " arguments given, the kernel takes " + std::to_string(k->count));
	}
	if (sizes) {
		for (int i = 0; i < nargs; i++) {
			if (sizes[i] != k->sizes[i]) {
				return fail(GIDEDGE_EMU_BAD_ARGS, std::string(name) + ": argument " + std::to_string(i) + " is " + std::to_string(sizes[i]) +
									  " bytes, the kernel's parameter is " + std::to_string(k->sizes[i]));
			}
		}
	}
	unsigned long long threads = 1ull * bx * by * bz;
	if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > 1024 || bz > 64 || gy > 65535 || gz > 65535 || gx > 0x7fffffffu) {
		char msg[200];
		std::snprintf(msg, sizeof msg, "%s: launch grid (%u,%u,%u) block (%u,%u,%u) out of range", name, gx, gy, gz, bx, by, bz);
		return fail(GIDEDGE_EMU_BAD_CONFIG, msg);
	}
	if (sched.active) return fail(GIDEDGE_EMU_BAD_CONFIG, std::string(name) + ": launched from inside a running emulated kernel");
	grid_dim = dim3{gx, gy, gz};
	block_dim = dim3{bx, by, bz};
	sched.kernel = k;
	sched.args = args;
	sched.stray_barrier = false;
	if (barrier) {
		if (!ensure_stacks(threads)) return fail(GIDEDGE_EMU_NO_MEMORY, std::string(name) + ": cannot map fiber stacks");
		sched.fibers.resize(threads);
		unsigned i = 0;
		for (unsigned z = 0; z < bz; z++)
			for (unsigned y = 0; y < by; y++)
				for (unsigned x = 0; x < bx; x++) sched.fibers[i++].tid = dim3{x, y, z};
	}
	int rc = GIDEDGE_EMU_OK;
	for (unsigned z = 0; z < gz && rc == GIDEDGE_EMU_OK; z++) {
		for (unsigned y = 0; y < gy && rc == GIDEDGE_EMU_OK; y++) {
			for (unsigned x = 0; x < gx && rc == GIDEDGE_EMU_OK; x++) {
				block_index = dim3{x, y, z};
				if (barrier) {
					sched.active = true;
					rc = run_block_fibers(static_cast<unsigned>(threads));
					sched.active = false;
					continue;
				}
				for (unsigned tz = 0; tz < bz; tz++)
					for (unsigned ty = 0; ty < by; ty++)
						for (unsigned tx = 0; tx < bx; tx++) {
							thread_index = dim3{tx, ty, tz};
							k->invoke(k->fn, args);
						}
			}
		}
	}
	if (rc == GIDEDGE_EMU_OK && sched.stray_barrier) {
		rc = fail(GIDEDGE_EMU_BAD_BARRIER, std::string(name) + ": called __syncthreads but was launched as a kernel without barriers");
	}
	return rc;
}

extern "C" const char* gidedge_emu_error(void) { return last_error.c_str(); }

extern "C" int gidedge_emu_kernel_count(void) { return static_cast<int>(registry().size()); }

extern "C" const char* gidedge_emu_kernel_name(int i) {
	if (i < 0 || i >= static_cast<int>(registry().size())) return nullptr;
	return registry()[i].name;
}

extern "C" int gidedge_emu_kernel_params(const char* name, unsigned* sizes, int max) {
	const Kernel* k = find(name);
	if (!k) return -1;
	for (int i = 0; i < k->count && i < max; i++) sizes[i] = k->sizes[i];
	return k->count;
}

#include "sources.h"

extern "C" const char* gidedge_emu_sources(void) { return GIDEDGE_KERNEL_SOURCES_SHA256; }
