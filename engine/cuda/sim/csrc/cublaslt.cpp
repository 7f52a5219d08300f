// libcublasLt.so.13 of the driver simulator. The simulator's libcublas
// depends on it by name, as NVIDIA's does, so loading cuBLAS from a folder
// the loader does not search works only if gidedge loads cuBLASLt first.
extern "C" unsigned long gidedge_sim_cublaslt(void) { return 13; }
