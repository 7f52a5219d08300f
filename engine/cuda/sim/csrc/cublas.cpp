// libcublas.so.13 of the driver simulator: the entry points of
// GD_CUBLAS_FUNCS as reference loops, queued on the handle's stream through
// the simulator's libcuda. It checks arguments the way cuBLAS documents
// (CUBLAS_STATUS_INVALID_VALUE) and that every operand lies inside device
// memory (else the context faults, as a GPU would). TF32 math rounds the
// inputs to TF32 (10 mantissa bits) before multiplying.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "../../driver/cuda_decl.h"
#include "sim.h"

namespace {

enum {
	SUCCESS = 0,
	NOT_INITIALIZED = 1,
	INVALID_VALUE = 7,
	EXECUTION_FAILED = 13,
	NOT_SUPPORTED = 15,
};

struct Handle {
	void* stream = nullptr;
	int math = GD_CUBLAS_DEFAULT_MATH;
};

float tf32(float x) {
	uint32_t u;
	std::memcpy(&u, &x, 4);
	if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
	std::memcpy(&x, &u, 4);
	return x;
}

struct Gemm {
	bool ta, tb;
	int m, n, k;
	float alpha, beta;
	const float *a, *b;
	float* c;
	int lda, ldb, ldc;
	long long sa, sb, sc;
	int batch;
	bool tf32;
};

// run is column-major C = alpha·op(A)·op(B) + beta·C for each batch entry.
void run(void* arg) {
	Gemm* g = static_cast<Gemm*>(arg);
	for (int q = 0; q < g->batch; q++) {
		const float* a = g->a + q * g->sa;
		const float* b = g->b + q * g->sb;
		float* c = g->c + q * g->sc;
		for (int j = 0; j < g->n; j++) {
			for (int i = 0; i < g->m; i++) {
				float acc = 0.f;
				for (int p = 0; p < g->k; p++) {
					float av = g->ta ? a[p + i * g->lda] : a[i + p * g->lda];
					float bv = g->tb ? b[j + p * g->ldb] : b[p + j * g->ldb];
					if (g->tf32) {
						av = tf32(av);
						bv = tf32(bv);
					}
					acc += av * bv;
				}
				float* out = &c[i + j * g->ldc];
				*out = g->beta == 0.f ? g->alpha * acc : g->alpha * acc + g->beta * *out;
			}
		}
	}
	delete g;
}

// span is the bytes a column-major rows×cols matrix with leading dimension
// ld covers.
size_t span(int rows, int cols, int ld) {
	if (rows == 0 || cols == 0) return 0;
	return (static_cast<size_t>(cols - 1) * ld + rows) * sizeof(float);
}

int submit(Handle* h, Gemm g) {
	if (!gidedge_sim_current()) return NOT_INITIALIZED;
	if (gidedge_sim_sticky()) return EXECUTION_FAILED;
	if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return INVALID_VALUE;
	int arows = g.ta ? g.k : g.m, brows = g.tb ? g.n : g.k;
	if (g.lda < (arows > 1 ? arows : 1) || g.ldb < (brows > 1 ? brows : 1) || g.ldc < (g.m > 1 ? g.m : 1)) return INVALID_VALUE;
	if (g.m == 0 || g.n == 0 || g.batch == 0) return SUCCESS;
	for (int q = 0; q < g.batch; q++) {
		bool ok = gidedge_sim_check(reinterpret_cast<uintptr_t>(g.c + q * g.sc), span(g.m, g.n, g.ldc));
		if (g.k > 0) {
			ok = ok && gidedge_sim_check(reinterpret_cast<uintptr_t>(g.a + q * g.sa), span(arows, g.ta ? g.m : g.k, g.lda));
			ok = ok && gidedge_sim_check(reinterpret_cast<uintptr_t>(g.b + q * g.sb), span(brows, g.tb ? g.k : g.n, g.ldb));
		}
		if (!ok) {
			gidedge_sim_fault(700, ("cuBLAS GEMM operand outside device memory (batch entry " + std::to_string(q) + ")").c_str());
			return SUCCESS;  // the fault surfaces at the next synchronisation, as on a GPU
		}
	}
	gidedge_sim_enqueue(h->stream, run, new Gemm(g));
	return SUCCESS;
}

int op(int t, bool* out) {
	if (t != GD_CUBLAS_OP_N && t != GD_CUBLAS_OP_T) return INVALID_VALUE;
	*out = t == GD_CUBLAS_OP_T;
	return SUCCESS;
}

}  // namespace

extern "C" {

int cublasCreate_v2(void** handle) {
	if (!gidedge_sim_current()) return NOT_INITIALIZED;
	*handle = new Handle();
	return SUCCESS;
}

int cublasDestroy_v2(void* handle) {
	if (!handle) return NOT_INITIALIZED;
	delete static_cast<Handle*>(handle);
	return SUCCESS;
}

int cublasSetStream_v2(void* handle, void* stream) {
	if (!handle) return NOT_INITIALIZED;
	static_cast<Handle*>(handle)->stream = stream;
	return SUCCESS;
}

int cublasSetMathMode(void* handle, int mode) {
	if (!handle) return NOT_INITIALIZED;
	if (mode != GD_CUBLAS_DEFAULT_MATH && mode != GD_CUBLAS_PEDANTIC_MATH && mode != GD_CUBLAS_TF32_TENSOR_OP_MATH) return INVALID_VALUE;
	static_cast<Handle*>(handle)->math = mode;
	return SUCCESS;
}

int cublasGetProperty(int type, int* value) {
	switch (type) {
	case GD_MAJOR_VERSION: *value = 13; return SUCCESS;
	case GD_MINOR_VERSION: *value = 0; return SUCCESS;
	case GD_PATCH_LEVEL: *value = 0; return SUCCESS;
	}
	return INVALID_VALUE;
}

const char* cublasGetStatusName(int status) {
	switch (status) {
	case SUCCESS: return "CUBLAS_STATUS_SUCCESS";
	case NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
	case INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
	case EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
	case NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
	}
	return "<unknown>";
}

int cublasSgemm_v2(void* handle, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
		   const float* beta, float* c, int ldc) {
	if (!handle) return NOT_INITIALIZED;
	Handle* h = static_cast<Handle*>(handle);
	Gemm g{};
	if (op(ta, &g.ta) || op(tb, &g.tb) || !alpha || !beta) return INVALID_VALUE;
	g.m = m, g.n = n, g.k = k, g.alpha = *alpha, g.beta = *beta, g.a = a, g.b = b, g.c = c;
	g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.batch = 1, g.tf32 = h->math == GD_CUBLAS_TF32_TENSOR_OP_MATH;
	return submit(h, g);
}

int cublasSgemmStridedBatched(void* handle, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda, long long sa,
			      const float* b, int ldb, long long sb, const float* beta, float* c, int ldc, long long sc, int batch) {
	if (!handle) return NOT_INITIALIZED;
	Handle* h = static_cast<Handle*>(handle);
	Gemm g{};
	if (op(ta, &g.ta) || op(tb, &g.tb) || !alpha || !beta) return INVALID_VALUE;
	g.m = m, g.n = n, g.k = k, g.alpha = *alpha, g.beta = *beta, g.a = a, g.b = b, g.c = c;
	g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.sa = sa, g.sb = sb, g.sc = sc, g.batch = batch;
	g.tf32 = h->math == GD_CUBLAS_TF32_TENSOR_OP_MATH;
	return submit(h, g);
}

static int gemm_ex(void* handle, int ta, int tb, int m, int n, int k, const void* alpha, const void* a, int at, int lda, long long sa,
		   const void* b, int bt, int ldb, long long sb, const void* beta, void* c, int ct, int ldc, long long sc, int batch, int compute) {
	if (!handle) return NOT_INITIALIZED;
	if (at != GD_CUDA_R_32F || bt != GD_CUDA_R_32F || ct != GD_CUDA_R_32F) return NOT_SUPPORTED;
	if (compute != GD_CUBLAS_COMPUTE_32F && compute != GD_CUBLAS_COMPUTE_32F_FAST_TF32) return NOT_SUPPORTED;
	Gemm g{};
	if (op(ta, &g.ta) || op(tb, &g.tb) || !alpha || !beta) return INVALID_VALUE;
	g.m = m, g.n = n, g.k = k, g.alpha = *static_cast<const float*>(alpha), g.beta = *static_cast<const float*>(beta);
	g.a = static_cast<const float*>(a), g.b = static_cast<const float*>(b), g.c = static_cast<float*>(c);
	g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.sa = sa, g.sb = sb, g.sc = sc, g.batch = batch;
	g.tf32 = compute == GD_CUBLAS_COMPUTE_32F_FAST_TF32;
	return submit(static_cast<Handle*>(handle), g);
}

int cublasGemmEx(void* handle, int ta, int tb, int m, int n, int k, const void* alpha, const void* a, int at, int lda, const void* b, int bt,
		 int ldb, const void* beta, void* c, int ct, int ldc, int compute, int algo) {
	(void)algo;
	return gemm_ex(handle, ta, tb, m, n, k, alpha, a, at, lda, 0, b, bt, ldb, 0, beta, c, ct, ldc, 0, 1, compute);
}

int cublasGemmStridedBatchedEx(void* handle, int ta, int tb, int m, int n, int k, const void* alpha, const void* a, int at, int lda,
			       long long sa, const void* b, int bt, int ldb, long long sb, const void* beta, void* c, int ct, int ldc,
			       long long sc, int batch, int compute, int algo) {
	(void)algo;
	return gemm_ex(handle, ta, tb, m, n, k, alpha, a, at, lda, sa, b, bt, ldb, sb, beta, c, ct, ldc, sc, batch, compute);
}

}  // extern "C"

#define GD_SAME_TYPE(ret, name, params, required) \
	static_assert(std::is_same<decltype(&name), gd_##name##_t>::value, #name " differs from cuda_decl.h");
GD_CUBLAS_FUNCS(GD_SAME_TYPE)
