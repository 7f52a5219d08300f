// libcudnn.so.9 of the driver simulator: the legacy convolution entry
// points of GD_CUDNN_FUNCS as direct reference loops (groups, strides,
// padding, dilation), queued on the handle's stream. Descriptors are
// checked against each other as cuDNN does (CUDNN_STATUS_BAD_PARAM), every
// algorithm asks for a small workspace so the caller's workspace handling
// runs, and operands must lie inside device memory.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../driver/cuda_decl.h"
#include "sim.h"

namespace {

enum {
	SUCCESS = 0,
	NOT_INITIALIZED = 1001,
	BAD_PARAM = 2000,
	NOT_SUPPORTED = 3000,
	EXECUTION_FAILED = 4000,
};

const size_t kWorkspace = 4096;

struct Handle {
	void* stream = nullptr;
};

struct Tensor {
	int n = 0, c = 0, h = 0, w = 0;
};

struct Filter {
	int k = 0, c = 0, h = 0, w = 0;
};

struct Conv {
	int ph = 0, pw = 0, sh = 1, sw = 1, dh = 1, dw = 1, groups = 1;
	bool set = false;
};

struct Geometry {
	Tensor x, y;
	Filter f;
	Conv cv;
};

// check validates the descriptors of one convolution.
int check(const void* xd, const void* wd, const void* cd, const void* yd, Geometry* g) {
	if (!xd || !wd || !cd || !yd) return BAD_PARAM;
	g->x = *static_cast<const Tensor*>(xd);
	g->y = *static_cast<const Tensor*>(yd);
	g->f = *static_cast<const Filter*>(wd);
	g->cv = *static_cast<const Conv*>(cd);
	if (!g->cv.set || g->x.n <= 0 || g->f.k <= 0) return BAD_PARAM;
	int oh = (g->x.h + 2 * g->cv.ph - g->cv.dh * (g->f.h - 1) - 1) / g->cv.sh + 1;
	int ow = (g->x.w + 2 * g->cv.pw - g->cv.dw * (g->f.w - 1) - 1) / g->cv.sw + 1;
	if (g->x.c != g->f.c * g->cv.groups || g->f.k % g->cv.groups != 0) return BAD_PARAM;
	if (g->y.n != g->x.n || g->y.c != g->f.k || g->y.h != oh || g->y.w != ow) return BAD_PARAM;
	return SUCCESS;
}

enum Pass { kForward, kBackwardData, kBackwardFilter };

struct Job {
	Pass pass;
	Geometry g;
	float alpha, beta;
	const float *in1, *in2;
	float* out;
};

// run is the reference convolution pass: forward (x, w → y), backward data
// (w, dy → dx) or backward filter (x, dy → dw); out = alpha·result + beta·out.
void run(void* arg) {
	Job* j = static_cast<Job*>(arg);
	const Geometry& g = j->g;
	int cg = g.f.c, kg = g.f.k / g.cv.groups;
	size_t out_n = j->pass == kForward ? size_t(g.y.n) * g.y.c * g.y.h * g.y.w
			: j->pass == kBackwardData ? size_t(g.x.n) * g.x.c * g.x.h * g.x.w
						    : size_t(g.f.k) * g.f.c * g.f.h * g.f.w;
	std::vector<float> acc(out_n, 0.f);
	for (int n = 0; n < g.x.n; n++) {
		for (int k = 0; k < g.f.k; k++) {
			int grp = k / kg;
			for (int oy = 0; oy < g.y.h; oy++) {
				for (int ox = 0; ox < g.y.w; ox++) {
					size_t yi = ((size_t(n) * g.y.c + k) * g.y.h + oy) * g.y.w + ox;
					for (int c = 0; c < cg; c++) {
						int ci = grp * cg + c;
						for (int ky = 0; ky < g.f.h; ky++) {
							int iy = oy * g.cv.sh - g.cv.ph + ky * g.cv.dh;
							if (iy < 0 || iy >= g.x.h) continue;
							for (int kx = 0; kx < g.f.w; kx++) {
								int ix = ox * g.cv.sw - g.cv.pw + kx * g.cv.dw;
								if (ix < 0 || ix >= g.x.w) continue;
								size_t xi = ((size_t(n) * g.x.c + ci) * g.x.h + iy) * g.x.w + ix;
								size_t wi = ((size_t(k) * cg + c) * g.f.h + ky) * g.f.w + kx;
								switch (j->pass) {
								case kForward: acc[yi] += j->in1[xi] * j->in2[wi]; break;
								case kBackwardData: acc[xi] += j->in1[wi] * j->in2[yi]; break;
								case kBackwardFilter: acc[wi] += j->in1[xi] * j->in2[yi]; break;
								}
							}
						}
					}
				}
			}
		}
	}
	for (size_t i = 0; i < out_n; i++) j->out[i] = j->beta == 0.f ? j->alpha * acc[i] : j->alpha * acc[i] + j->beta * j->out[i];
	delete j;
}

size_t bytes(const Tensor& t) { return size_t(t.n) * t.c * t.h * t.w * sizeof(float); }
size_t bytes(const Filter& f) { return size_t(f.k) * f.c * f.h * f.w * sizeof(float); }

bool inside(const void* p, size_t n) { return gidedge_sim_check(reinterpret_cast<uintptr_t>(p), n); }

int submit(void* handle, Pass pass, const Geometry& g, const void* alpha, const void* in1, size_t in1_bytes, const void* in2, size_t in2_bytes,
	   void* ws, size_t ws_size, const void* beta, void* out, size_t out_bytes) {
	if (!handle) return NOT_INITIALIZED;
	if (!gidedge_sim_current()) return NOT_INITIALIZED;
	if (gidedge_sim_sticky()) return EXECUTION_FAILED;
	if (!alpha || !beta) return BAD_PARAM;
	if (ws_size < kWorkspace || !inside(ws, kWorkspace)) return BAD_PARAM;
	if (!inside(in1, in1_bytes) || !inside(in2, in2_bytes) || !inside(out, out_bytes)) {
		gidedge_sim_fault(700, "cuDNN convolution operand outside device memory");
		return SUCCESS;
	}
	Job* j = new Job{pass, g, *static_cast<const float*>(alpha), *static_cast<const float*>(beta), static_cast<const float*>(in1),
			 static_cast<const float*>(in2), static_cast<float*>(out)};
	gidedge_sim_enqueue(static_cast<Handle*>(handle)->stream, run, j);
	return SUCCESS;
}

int pick(int requested, int* returned, gd_conv_algo_perf* perf) {
	if (requested < 1 || !returned || !perf) return BAD_PARAM;
	std::memset(perf, 0, sizeof *perf);
	perf->algo = 0;
	perf->status = SUCCESS;
	perf->memory = kWorkspace;
	*returned = 1;
	return SUCCESS;
}

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return 91000; }

const char* cudnnGetErrorString(int status) {
	switch (status) {
	case SUCCESS: return "CUDNN_STATUS_SUCCESS";
	case NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
	case BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
	case NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
	case EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
	}
	return "CUDNN_UNKNOWN_STATUS";
}

int cudnnCreate(void** handle) {
	if (!gidedge_sim_current()) return NOT_INITIALIZED;
	*handle = new Handle();
	return SUCCESS;
}

int cudnnDestroy(void* handle) {
	if (!handle) return BAD_PARAM;
	delete static_cast<Handle*>(handle);
	return SUCCESS;
}

int cudnnSetStream(void* handle, void* stream) {
	if (!handle) return BAD_PARAM;
	static_cast<Handle*>(handle)->stream = stream;
	return SUCCESS;
}

int cudnnCreateTensorDescriptor(void** d) {
	*d = new Tensor();
	return SUCCESS;
}

int cudnnSetTensor4dDescriptor(void* d, int format, int dtype, int n, int c, int h, int w) {
	if (!d || format != GD_CUDNN_TENSOR_NCHW || dtype != GD_CUDNN_DATA_FLOAT || n <= 0 || c <= 0 || h <= 0 || w <= 0) return BAD_PARAM;
	*static_cast<Tensor*>(d) = Tensor{n, c, h, w};
	return SUCCESS;
}

int cudnnDestroyTensorDescriptor(void* d) {
	delete static_cast<Tensor*>(d);
	return SUCCESS;
}

int cudnnCreateFilterDescriptor(void** d) {
	*d = new Filter();
	return SUCCESS;
}

int cudnnSetFilter4dDescriptor(void* d, int dtype, int format, int k, int c, int h, int w) {
	if (!d || format != GD_CUDNN_TENSOR_NCHW || dtype != GD_CUDNN_DATA_FLOAT || k <= 0 || c <= 0 || h <= 0 || w <= 0) return BAD_PARAM;
	*static_cast<Filter*>(d) = Filter{k, c, h, w};
	return SUCCESS;
}

int cudnnDestroyFilterDescriptor(void* d) {
	delete static_cast<Filter*>(d);
	return SUCCESS;
}

int cudnnCreateConvolutionDescriptor(void** d) {
	*d = new Conv();
	return SUCCESS;
}

int cudnnSetConvolution2dDescriptor(void* d, int ph, int pw, int sh, int sw, int dh, int dw, int mode, int dtype) {
	if (!d || ph < 0 || pw < 0 || sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0) return BAD_PARAM;
	if (mode != GD_CUDNN_CROSS_CORRELATION || dtype != GD_CUDNN_DATA_FLOAT) return NOT_SUPPORTED;
	Conv* c = static_cast<Conv*>(d);
	c->ph = ph, c->pw = pw, c->sh = sh, c->sw = sw, c->dh = dh, c->dw = dw, c->set = true;
	return SUCCESS;
}

int cudnnSetConvolutionGroupCount(void* d, int groups) {
	if (!d || groups <= 0) return BAD_PARAM;
	static_cast<Conv*>(d)->groups = groups;
	return SUCCESS;
}

int cudnnSetConvolutionMathType(void* d, int math) {
	if (!d || (math != GD_CUDNN_DEFAULT_MATH && math != GD_CUDNN_FMA_MATH)) return BAD_PARAM;
	return SUCCESS;
}

int cudnnDestroyConvolutionDescriptor(void* d) {
	delete static_cast<Conv*>(d);
	return SUCCESS;
}

int cudnnGetConvolutionForwardAlgorithm_v7(void* h, void* x, void* w, void* conv, void* y, int requested, int* returned, gd_conv_algo_perf* perf) {
	Geometry g;
	if (!h) return BAD_PARAM;
	if (int rc = check(x, w, conv, y, &g)) return rc;
	return pick(requested, returned, perf);
}

int cudnnGetConvolutionForwardWorkspaceSize(void* h, void* x, void* w, void* conv, void* y, int algo, size_t* size) {
	Geometry g;
	if (!h || algo != 0 || !size) return BAD_PARAM;
	if (int rc = check(x, w, conv, y, &g)) return rc;
	*size = kWorkspace;
	return SUCCESS;
}

int cudnnConvolutionForward(void* h, const void* alpha, void* xd, const void* x, void* wd, const void* w, void* conv, int algo, void* ws,
			    size_t ws_size, const void* beta, void* yd, void* y) {
	Geometry g;
	if (algo != 0) return BAD_PARAM;
	if (int rc = check(xd, wd, conv, yd, &g)) return rc;
	return submit(h, kForward, g, alpha, x, bytes(g.x), w, bytes(g.f), ws, ws_size, beta, y, bytes(g.y));
}

int cudnnGetConvolutionBackwardDataAlgorithm_v7(void* h, void* w, void* dy, void* conv, void* dx, int requested, int* returned, gd_conv_algo_perf* perf) {
	Geometry g;
	if (!h) return BAD_PARAM;
	if (int rc = check(dx, w, conv, dy, &g)) return rc;
	return pick(requested, returned, perf);
}

int cudnnGetConvolutionBackwardDataWorkspaceSize(void* h, void* w, void* dy, void* conv, void* dx, int algo, size_t* size) {
	Geometry g;
	if (!h || algo != 0 || !size) return BAD_PARAM;
	if (int rc = check(dx, w, conv, dy, &g)) return rc;
	*size = kWorkspace;
	return SUCCESS;
}

int cudnnConvolutionBackwardData(void* h, const void* alpha, void* wd, const void* w, void* dyd, const void* dy, void* conv, int algo, void* ws,
				 size_t ws_size, const void* beta, void* dxd, void* dx) {
	Geometry g;
	if (algo != 0) return BAD_PARAM;
	if (int rc = check(dxd, wd, conv, dyd, &g)) return rc;
	return submit(h, kBackwardData, g, alpha, w, bytes(g.f), dy, bytes(g.y), ws, ws_size, beta, dx, bytes(g.x));
}

int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void* h, void* x, void* dy, void* conv, void* dw, int requested, int* returned, gd_conv_algo_perf* perf) {
	Geometry g;
	if (!h) return BAD_PARAM;
	if (int rc = check(x, dw, conv, dy, &g)) return rc;
	return pick(requested, returned, perf);
}

int cudnnGetConvolutionBackwardFilterWorkspaceSize(void* h, void* x, void* dy, void* conv, void* dw, int algo, size_t* size) {
	Geometry g;
	if (!h || algo != 0 || !size) return BAD_PARAM;
	if (int rc = check(x, dw, conv, dy, &g)) return rc;
	*size = kWorkspace;
	return SUCCESS;
}

int cudnnConvolutionBackwardFilter(void* h, const void* alpha, void* xd, const void* x, void* dyd, const void* dy, void* conv, int algo, void* ws,
				   size_t ws_size, const void* beta, void* dwd, void* dw) {
	Geometry g;
	if (algo != 0) return BAD_PARAM;
	if (int rc = check(xd, dwd, conv, dyd, &g)) return rc;
	return submit(h, kBackwardFilter, g, alpha, x, bytes(g.x), dy, bytes(g.y), ws, ws_size, beta, dw, bytes(g.f));
}

}  // extern "C"

#define GD_SAME_TYPE(ret, name, params, required) \
	static_assert(std::is_same<decltype(&name), gd_##name##_t>::value, #name " differs from cuda_decl.h");
GD_CUDNN_FUNCS(GD_SAME_TYPE)
