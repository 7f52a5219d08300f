// libcuda.so.1 of the driver simulator: exactly the entry points of
// GD_CUDA_FUNCS (../driver/cuda_decl.h), checked against their declared
// types at compile time.
//
// Device memory is host memory filled with 0xff bytes (NaN as float) when
// allocated, as real device memory is not zeroed. Each stream is a worker
// thread running its queue in order, so work really is asynchronous and a
// missing synchronisation shows. Launches look the kernel up in the
// emulation (../emu) by name, with the parameter sizes the PTX declares.
//
// Fault injection, read at cuInit and at each call it concerns:
//   GIDEDGE_CUDASIM_DEVICES=0          cuInit fails with CUDA_ERROR_NO_DEVICE
//   GIDEDGE_CUDASIM_DRIVER_VERSION=N   cuDriverGetVersion reports N (default 13000)
//   GIDEDGE_CUDASIM_COMPUTE=M.m        the device's compute capability (default 9.0)
//   GIDEDGE_CUDASIM_MEMORY=BYTES       device memory size (default 8 GiB); cuMemAlloc beyond it fails
//   GIDEDGE_CUDASIM_FAIL_LAUNCH=NAME   cuLaunchKernel of kernel NAME fails at once (LAUNCH_OUT_OF_RESOURCES)
//   GIDEDGE_CUDASIM_FAULT=NAME         kernel NAME faults when it runs: a sticky CUDA_ERROR_ILLEGAL_ADDRESS
// NAME@N in the last two fails only the N-th launch of NAME (counting from
// 1), so a failure can be placed in the middle of a run.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../../driver/cuda_decl.h"
#include "../../emu/emu.h"
#include "sim.h"

namespace {

enum {
	OK = 0,
	INVALID_VALUE = 1,
	OUT_OF_MEMORY = 2,
	NOT_INITIALIZED = 3,
	NO_DEVICE = 100,
	INVALID_DEVICE = 101,
	INVALID_CONTEXT = 201,
	NO_BINARY_FOR_GPU = 209,
	INVALID_PTX = 218,
	INVALID_HANDLE = 400,
	NOT_FOUND = 500,
	NOT_READY = 600,
	ILLEGAL_ADDRESS = 700,
	LAUNCH_OUT_OF_RESOURCES = 701,
	LAUNCH_FAILED = 719,
};

const char* error_name(int code) {
	switch (code) {
	case OK: return "CUDA_SUCCESS";
	case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
	case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
	case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
	case NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
	case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
	case INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
	case NO_BINARY_FOR_GPU: return "CUDA_ERROR_NO_BINARY_FOR_GPU";
	case INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
	case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
	case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
	case NOT_READY: return "CUDA_ERROR_NOT_READY";
	case ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
	case LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
	case LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
	}
	return nullptr;
}

std::string env(const char* name, const char* fallback) {
	const char* v = std::getenv(name);
	return v && *v ? v : fallback;
}

std::atomic<bool> initialized{false};
std::atomic<int> sticky{0};

struct Context {
	std::atomic<int> refs{0};
};
Context the_context;
thread_local Context* current = nullptr;

std::mutex mem_mu;
std::map<unsigned long long, size_t> device_mem;  // base → size
std::map<void*, size_t> pinned_mem;
size_t mem_used = 0;

size_t memory_limit() { return std::strtoull(env("GIDEDGE_CUDASIM_MEMORY", "8589934592").c_str(), nullptr, 10); }

void compute_capability(int* major, int* minor) {
	std::string cc = env("GIDEDGE_CUDASIM_COMPUTE", "9.0");
	*major = std::atoi(cc.c_str());
	size_t dot = cc.find('.');
	*minor = dot == std::string::npos ? 0 : std::atoi(cc.c_str() + dot + 1);
}

// injected reports whether fault variable var names this launch of kernel
// name: "NAME" matches every launch, "NAME@N" the N-th only.
bool injected(const char* var, const std::string& name) {
	static std::mutex mu;
	static std::map<std::string, long> launches;
	std::string v = env(var, "");
	if (v.empty()) return false;
	size_t at = v.find('@');
	if (v.substr(0, at) != name) return false;
	if (at == std::string::npos) return true;
	std::lock_guard<std::mutex> lock(mu);
	return ++launches[std::string(var) + " " + name] == std::atol(v.c_str() + at + 1);
}

bool in_device_memory(unsigned long long p, size_t bytes) {
	std::lock_guard<std::mutex> lock(mem_mu);
	auto it = device_mem.upper_bound(p);
	if (it == device_mem.begin()) return false;
	--it;
	return p >= it->first && p + bytes <= it->first + it->second;
}

bool is_pinned(const void* p, size_t bytes) {
	std::lock_guard<std::mutex> lock(mem_mu);
	auto it = pinned_mem.upper_bound(const_cast<void*>(p));
	if (it == pinned_mem.begin()) return false;
	--it;
	const char* base = static_cast<const char*>(it->first);
	const char* q = static_cast<const char*>(p);
	return q >= base && q + bytes <= base + it->second;
}

// A stream: one worker thread running its queue in order.
struct Stream {
	std::mutex mu;
	std::condition_variable cv, done;
	std::deque<std::function<void()>> queue;
	bool busy = false, stop = false;
	std::thread worker;

	Stream() : worker([this] { loop(); }) {}

	void loop() {
		std::unique_lock<std::mutex> lock(mu);
		for (;;) {
			cv.wait(lock, [this] { return stop || !queue.empty(); });
			if (queue.empty()) return;
			std::function<void()> job = std::move(queue.front());
			queue.pop_front();
			busy = true;
			lock.unlock();
			// After a fault the device runs nothing more.
			if (sticky.load() == 0) job();
			lock.lock();
			busy = false;
			done.notify_all();
		}
	}

	void push(std::function<void()> job) {
		std::lock_guard<std::mutex> lock(mu);
		queue.push_back(std::move(job));
		cv.notify_one();
	}

	void drain() {
		std::unique_lock<std::mutex> lock(mu);
		done.wait(lock, [this] { return queue.empty() && !busy; });
	}

	~Stream() {
		{
			std::lock_guard<std::mutex> lock(mu);
			stop = true;
			cv.notify_one();
		}
		worker.join();
	}
};

std::mutex streams_mu;
std::set<Stream*> streams;

bool valid_stream(void* s) {
	if (s == nullptr) return true;
	std::lock_guard<std::mutex> lock(streams_mu);
	return streams.count(static_cast<Stream*>(s)) > 0;
}

void drain_all() {
	std::vector<Stream*> all;
	{
		std::lock_guard<std::mutex> lock(streams_mu);
		all.assign(streams.begin(), streams.end());
	}
	for (Stream* s : all) s->drain();
}

// enqueue runs job in stream order; the legacy default stream (NULL) runs
// it at once after every stream has drained.
void enqueue(void* stream, std::function<void()> job) {
	if (stream == nullptr) {
		drain_all();
		if (sticky.load() == 0) job();
		return;
	}
	static_cast<Stream*>(stream)->push(std::move(job));
}

struct Event {
	std::mutex mu;
	std::condition_variable cv;
	bool timing = true;
	unsigned long long recorded = 0, completed = 0;
	std::chrono::steady_clock::time_point when;
};

// wait_for waits until event e completes its want-th record, or a fault
// means it never will (a faulted stream runs nothing more, so the wait
// polls the sticky error).
void wait_for(Event* e, std::unique_lock<std::mutex>& lock, unsigned long long want) {
	while (e->completed < want && sticky.load() == 0) e->cv.wait_for(lock, std::chrono::milliseconds(10));
}

struct Function {
	std::string name;
	bool barrier = false;
	std::vector<unsigned> sizes;
};

struct Module {
	std::map<std::string, Function> functions;
};

// Every call that needs a context checks for one; a sticky fault answers
// everything after it.
int guard() {
	if (!initialized.load()) return NOT_INITIALIZED;
	if (int s = sticky.load()) return s;
	if (current == nullptr) return INVALID_CONTEXT;
	return OK;
}

#define GUARD()                        \
	do {                           \
		int rc_ = guard();     \
		if (rc_ != OK) return rc_; \
	} while (0)

void set_log(unsigned int n, gd_CUjit_option* opts, void** vals, const std::string& msg) {
	char* buf = nullptr;
	size_t size = 0;
	for (unsigned i = 0; i < n; i++) {
		if (opts[i] == GD_CU_JIT_ERROR_LOG_BUFFER) buf = static_cast<char*>(vals[i]);
		if (opts[i] == GD_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) size = reinterpret_cast<uintptr_t>(vals[i]);
	}
	if (buf && size > 0) std::snprintf(buf, size, "%s", msg.c_str());
}

}  // namespace

extern "C" {

int gidedge_sim_enqueue(void* stream, void (*fn)(void*), void* arg) {
	if (!valid_stream(stream)) return INVALID_HANDLE;
	enqueue(stream, [fn, arg] { fn(arg); });
	return OK;
}

int gidedge_sim_check(unsigned long long ptr, size_t bytes) { return in_device_memory(ptr, bytes); }

void gidedge_sim_fault(int code, const char* what) {
	std::fprintf(stderr, "gidedge CUDA simulator: %s\n", what);
	int expected = 0;
	sticky.compare_exchange_strong(expected, code);
}

int gidedge_sim_sticky(void) { return sticky.load(); }

int gidedge_sim_current(void) { return current != nullptr; }

int cuInit(unsigned int flags) {
	if (flags != 0) return INVALID_VALUE;
	if (env("GIDEDGE_CUDASIM_DEVICES", "1") == "0") return NO_DEVICE;
	initialized = true;
	return OK;
}

int cuDriverGetVersion(int* v) {
	if (!v) return INVALID_VALUE;
	*v = std::atoi(env("GIDEDGE_CUDASIM_DRIVER_VERSION", "13000").c_str());
	return OK;
}

int cuGetErrorName(int code, const char** s) {
	*s = error_name(code);
	return *s ? OK : INVALID_VALUE;
}

int cuGetErrorString(int code, const char** s) {
	*s = error_name(code);
	return *s ? OK : INVALID_VALUE;
}

int cuDeviceGetCount(int* n) {
	if (!initialized.load()) return NOT_INITIALIZED;
	*n = 1;
	return OK;
}

int cuDeviceGet(int* dev, int ordinal) {
	if (!initialized.load()) return NOT_INITIALIZED;
	if (ordinal != 0) return INVALID_DEVICE;
	*dev = 0;
	return OK;
}

int cuDeviceGetName(char* name, int len, int dev) {
	if (dev != 0) return INVALID_DEVICE;
	std::snprintf(name, len, "gidedge CUDA simulator (not a GPU)");
	return OK;
}

int cuDeviceGetAttribute(int* v, int attr, int dev) {
	if (dev != 0) return INVALID_DEVICE;
	int major, minor;
	compute_capability(&major, &minor);
	switch (attr) {
	case GD_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 4; return OK;
	case GD_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = major; return OK;
	case GD_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = minor; return OK;
	}
	return INVALID_VALUE;
}

int cuDeviceTotalMem_v2(size_t* bytes, int dev) {
	if (dev != 0) return INVALID_DEVICE;
	*bytes = memory_limit();
	return OK;
}

int cuDevicePrimaryCtxRetain(void** ctx, int dev) {
	if (!initialized.load()) return NOT_INITIALIZED;
	if (dev != 0) return INVALID_DEVICE;
	the_context.refs++;
	*ctx = &the_context;
	return OK;
}

int cuDevicePrimaryCtxRelease_v2(int dev) {
	if (dev != 0) return INVALID_DEVICE;
	if (the_context.refs <= 0) return INVALID_CONTEXT;
	the_context.refs--;
	return OK;
}

int cuCtxSetCurrent(void* ctx) {
	if (ctx != nullptr && ctx != &the_context) return INVALID_CONTEXT;
	current = static_cast<Context*>(ctx);
	return OK;
}

int cuCtxGetCurrent(void** ctx) {
	*ctx = current;
	return OK;
}

int cuCtxSynchronize(void) {
	GUARD();
	drain_all();
	return sticky.load();
}

int cuMemAlloc_v2(unsigned long long* ptr, size_t bytes) {
	GUARD();
	if (bytes == 0) return INVALID_VALUE;
	std::lock_guard<std::mutex> lock(mem_mu);
	if (mem_used + bytes > memory_limit()) return OUT_OF_MEMORY;
	size_t rounded = (bytes + 255) / 256 * 256;
	void* p = std::aligned_alloc(256, rounded);
	if (!p) return OUT_OF_MEMORY;
	std::memset(p, 0xff, rounded);
	*ptr = reinterpret_cast<uintptr_t>(p);
	device_mem[*ptr] = bytes;
	mem_used += bytes;
	return OK;
}

int cuMemFree_v2(unsigned long long ptr) {
	GUARD();
	// Freeing waits for the device, as cuMemFree does.
	drain_all();
	std::lock_guard<std::mutex> lock(mem_mu);
	auto it = device_mem.find(ptr);
	if (it == device_mem.end()) return INVALID_VALUE;
	mem_used -= it->second;
	device_mem.erase(it);
	std::free(reinterpret_cast<void*>(ptr));
	return OK;
}

int cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
	GUARD();
	std::lock_guard<std::mutex> lock(mem_mu);
	*total = memory_limit();
	*free_bytes = *total > mem_used ? *total - mem_used : 0;
	return OK;
}

int cuMemAllocHost_v2(void** p, size_t bytes) {
	GUARD();
	if (bytes == 0) return INVALID_VALUE;
	*p = std::malloc(bytes);
	if (!*p) return OUT_OF_MEMORY;
	std::lock_guard<std::mutex> lock(mem_mu);
	pinned_mem[*p] = bytes;
	return OK;
}

int cuMemFreeHost(void* p) {
	GUARD();
	drain_all();
	std::lock_guard<std::mutex> lock(mem_mu);
	auto it = pinned_mem.find(p);
	if (it == pinned_mem.end()) return INVALID_VALUE;
	pinned_mem.erase(it);
	std::free(p);
	return OK;
}

int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void* src, size_t bytes, void* stream) {
	GUARD();
	if (!src || !in_device_memory(dst, bytes) || !valid_stream(stream)) return INVALID_VALUE;
	void* d = reinterpret_cast<void*>(dst);
	if (is_pinned(src, bytes)) {
		enqueue(stream, [d, src, bytes] { std::memcpy(d, src, bytes); });
		return OK;
	}
	// Pageable memory is staged: the caller may reuse src on return.
	auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
	enqueue(stream, [d, staged] { std::memcpy(d, staged->data(), staged->size()); });
	return OK;
}

int cuMemcpyDtoHAsync_v2(void* dst, unsigned long long src, size_t bytes, void* stream) {
	GUARD();
	if (!dst || !in_device_memory(src, bytes) || !valid_stream(stream)) return INVALID_VALUE;
	const void* s = reinterpret_cast<const void*>(src);
	enqueue(stream, [dst, s, bytes] { std::memcpy(dst, s, bytes); });
	// Into pageable memory the copy is synchronous: it has landed on return.
	if (!is_pinned(dst, bytes) && stream != nullptr) static_cast<Stream*>(stream)->drain();
	return sticky.load();
}

int cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long src, size_t bytes, void* stream) {
	GUARD();
	if (!in_device_memory(dst, bytes) || !in_device_memory(src, bytes) || !valid_stream(stream)) return INVALID_VALUE;
	void* d = reinterpret_cast<void*>(dst);
	const void* s = reinterpret_cast<const void*>(src);
	enqueue(stream, [d, s, bytes] { std::memmove(d, s, bytes); });
	return OK;
}

int cuMemsetD32Async(unsigned long long dst, unsigned int value, size_t count, void* stream) {
	GUARD();
	if (dst % 4 != 0 || !in_device_memory(dst, count * 4) || !valid_stream(stream)) return INVALID_VALUE;
	unsigned* d = reinterpret_cast<unsigned*>(dst);
	enqueue(stream, [d, value, count] {
		for (size_t i = 0; i < count; i++) d[i] = value;
	});
	return OK;
}

int cuStreamCreate(void** stream, unsigned int flags) {
	GUARD();
	if (flags > 1) return INVALID_VALUE;
	Stream* s = new Stream();
	std::lock_guard<std::mutex> lock(streams_mu);
	streams.insert(s);
	*stream = s;
	return OK;
}

int cuStreamDestroy_v2(void* stream) {
	GUARD();
	Stream* s = static_cast<Stream*>(stream);
	{
		std::lock_guard<std::mutex> lock(streams_mu);
		if (!streams.erase(s)) return INVALID_HANDLE;
	}
	s->drain();
	delete s;
	return OK;
}

int cuStreamSynchronize(void* stream) {
	GUARD();
	if (!valid_stream(stream)) return INVALID_HANDLE;
	if (stream == nullptr) {
		drain_all();
	} else {
		static_cast<Stream*>(stream)->drain();
	}
	return sticky.load();
}

int cuStreamWaitEvent(void* stream, void* event, unsigned int flags) {
	GUARD();
	if (flags != 0 || !valid_stream(stream) || event == nullptr) return INVALID_VALUE;
	Event* e = static_cast<Event*>(event);
	unsigned long long want;
	{
		std::lock_guard<std::mutex> lock(e->mu);
		want = e->recorded;
	}
	enqueue(stream, [e, want] {
		std::unique_lock<std::mutex> lock(e->mu);
		wait_for(e, lock, want);
	});
	return OK;
}

int cuEventCreate(void** event, unsigned int flags) {
	GUARD();
	if (flags & ~2u) return INVALID_VALUE;
	Event* e = new Event();
	e->timing = (flags & GD_CU_EVENT_DISABLE_TIMING) == 0;
	*event = e;
	return OK;
}

int cuEventDestroy_v2(void* event) {
	GUARD();
	if (!event) return INVALID_HANDLE;
	drain_all();
	delete static_cast<Event*>(event);
	return OK;
}

int cuEventRecord(void* event, void* stream) {
	GUARD();
	if (!event || !valid_stream(stream)) return INVALID_HANDLE;
	Event* e = static_cast<Event*>(event);
	unsigned long long seq;
	{
		std::lock_guard<std::mutex> lock(e->mu);
		seq = ++e->recorded;
	}
	enqueue(stream, [e, seq] {
		std::lock_guard<std::mutex> lock(e->mu);
		e->completed = seq;
		e->when = std::chrono::steady_clock::now();
		e->cv.notify_all();
	});
	return OK;
}

int cuEventSynchronize(void* event) {
	GUARD();
	if (!event) return INVALID_HANDLE;
	Event* e = static_cast<Event*>(event);
	std::unique_lock<std::mutex> lock(e->mu);
	wait_for(e, lock, e->recorded);
	return sticky.load();
}

int cuEventElapsedTime(float* ms, void* start, void* end) {
	GUARD();
	if (!start || !end) return INVALID_HANDLE;
	Event* a = static_cast<Event*>(start);
	Event* b = static_cast<Event*>(end);
	if (!a->timing || !b->timing) return INVALID_HANDLE;
	std::lock_guard<std::mutex> la(a->mu);
	std::lock_guard<std::mutex> lb(b->mu);
	if (a->recorded == 0 || b->recorded == 0) return INVALID_HANDLE;
	if (a->completed < a->recorded || b->completed < b->recorded) return NOT_READY;
	*ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
	return OK;
}

// cuModuleLoadDataEx reads the PTX's entries, their parameter sizes and
// whether they synchronise (bar.sync), and binds each to its emulation,
// which must have the same parameter sizes: PTX and emulation built from
// different sources are refused, as a driver refuses bad PTX.
int cuModuleLoadDataEx(void** module, const void* image, unsigned int n, gd_CUjit_option* opts, void** vals) {
	GUARD();
	if (!image || !module) return INVALID_VALUE;
	std::string ptx(static_cast<const char*>(image));
	if (ptx.find(".version") == std::string::npos) {
		set_log(n, opts, vals, "simulator: not PTX (no .version directive)");
		return INVALID_PTX;
	}
	size_t target = ptx.find(".target sm_");
	if (target != std::string::npos) {
		int sm = std::atoi(ptx.c_str() + target + 11);
		int major, minor;
		compute_capability(&major, &minor);
		if (sm > 10 * major + minor) {
			set_log(n, opts, vals, "simulator: PTX targets sm_" + std::to_string(sm) + ", the device is compute capability " + std::to_string(major) + "." + std::to_string(minor));
			return NO_BINARY_FOR_GPU;
		}
	}
	Module* m = new Module();
	size_t pos = 0;
	while ((pos = ptx.find(".entry ", pos)) != std::string::npos) {
		size_t name_end = ptx.find('(', pos);
		size_t params_end = ptx.find(')', name_end);
		size_t body_end = ptx.find(".entry ", params_end);
		if (name_end == std::string::npos || params_end == std::string::npos) break;
		Function f;
		f.name = ptx.substr(pos + 7, name_end - pos - 7);
		std::string params = ptx.substr(name_end + 1, params_end - name_end - 1);
		size_t p = 0;
		while ((p = params.find(".param", p)) != std::string::npos) {
			size_t line_end = params.find('\n', p);
			std::string decl = params.substr(p, line_end == std::string::npos ? std::string::npos : line_end - p);
			unsigned size = 4;
			size_t bracket = decl.find('[');
			if (bracket != std::string::npos) {
				size = static_cast<unsigned>(std::atoi(decl.c_str() + bracket + 1));
			} else if (decl.find("64") != std::string::npos) {
				size = 8;
			}
			f.sizes.push_back(size);
			p += 6;
		}
		f.barrier = ptx.substr(params_end, body_end == std::string::npos ? std::string::npos : body_end - params_end).find("bar.sync") != std::string::npos;
		unsigned emulated[64];
		int count = gidedge_emu_kernel_params(f.name.c_str(), emulated, 64);
		bool same = count == static_cast<int>(f.sizes.size());
		for (int i = 0; same && i < count; i++) same = emulated[i] == f.sizes[i];
		if (!same) {
			set_log(n, opts, vals, "simulator: kernel " + f.name + " of the PTX has no emulation with the same parameters; PTX and emulation come from different sources (run make ptx)");
			delete m;
			return INVALID_PTX;
		}
		m->functions[f.name] = f;
		pos = params_end;
	}
	*module = m;
	return OK;
}

int cuModuleUnload(void* module) {
	GUARD();
	if (!module) return INVALID_HANDLE;
	drain_all();
	delete static_cast<Module*>(module);
	return OK;
}

int cuModuleGetFunction(void** fn, void* module, const char* name) {
	GUARD();
	if (!module || !name) return INVALID_HANDLE;
	Module* m = static_cast<Module*>(module);
	auto it = m->functions.find(name);
	if (it == m->functions.end()) return NOT_FOUND;
	*fn = &it->second;
	return OK;
}

int cuLaunchKernel(void* fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,
		   unsigned int shared, void* stream, void** params, void** extra) {
	GUARD();
	if (!fn || extra != nullptr || !valid_stream(stream)) return INVALID_VALUE;
	const Function* f = static_cast<const Function*>(fn);
	unsigned long long threads = 1ull * bx * by * bz;
	if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > 1024 || bz > 64 || gy > 65535 || gz > 65535 || shared > 48 * 1024) {
		return INVALID_VALUE;
	}
	if (!f->sizes.empty() && params == nullptr) return INVALID_VALUE;
	if (injected("GIDEDGE_CUDASIM_FAIL_LAUNCH", f->name)) return LAUNCH_OUT_OF_RESOURCES;
	// The driver copies the arguments at launch; so does the simulator.
	std::vector<unsigned> offsets;
	size_t total = 0;
	for (unsigned s : f->sizes) {
		total = (total + 7) / 8 * 8;
		offsets.push_back(static_cast<unsigned>(total));
		total += s;
	}
	auto buf = std::make_shared<std::vector<unsigned char>>(total + 8);
	for (size_t i = 0; i < f->sizes.size(); i++) std::memcpy(buf->data() + offsets[i], params[i], f->sizes[i]);
	bool fault = injected("GIDEDGE_CUDASIM_FAULT", f->name);
	std::string name = f->name;
	bool barrier = f->barrier;
	enqueue(stream, [=] {
		if (fault) {
			gidedge_sim_fault(ILLEGAL_ADDRESS, (name + ": fault injected by GIDEDGE_CUDASIM_FAULT").c_str());
			return;
		}
		std::vector<void*> args(offsets.size());
		for (size_t i = 0; i < offsets.size(); i++) args[i] = buf->data() + offsets[i];
		int rc = gidedge_emu_launch(name.c_str(), gx, gy, gz, bx, by, bz, args.data(), nullptr, static_cast<int>(args.size()), barrier);
		if (rc != GIDEDGE_EMU_OK) gidedge_sim_fault(LAUNCH_FAILED, gidedge_emu_error());
	});
	return OK;
}

}  // extern "C"

// Every entry point has exactly the type gidedge's declarations give it.
#define GD_SAME_TYPE(ret, name, params, required) \
	static_assert(std::is_same<decltype(&name), gd_##name##_t>::value, #name " differs from cuda_decl.h");
GD_CUDA_FUNCS(GD_SAME_TYPE)
