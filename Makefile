# gidedge: the two commands a fresh machine needs are `make demo` and `make test`.
# Both run scripts/setup.sh first, which installs what is missing and is a no-op otherwise.

GO        ?= go
BIN       := bin/gidedge
export CGO_ENABLED := 1
# OpenBLAS threads: the engine parallelises across goroutines itself.
export OPENBLAS_NUM_THREADS ?= 1

# Packages where goroutines share state; they also run under the race detector.
RACE_PKGS := ./engine/... ./dataset/... ./infer/... ./serve/... ./benchlat/...
# The engine, its reference backend, layers and optimizers build without cgo.
NOCGO_PKGS := ./engine ./engine/backend ./engine/ref ./engine/nn ./engine/optim
# Tests that run a second time, -short, on the reference backend (GIDEDGE_DEVICE=ref).
REF_PKGS := ./engine ./engine/nn ./engine/optim ./engine/checkpoint ./engine/enginetest ./models ./train ./distill ./export ./onnximport
# Tests that run once more, -short, on the CUDA backend over the driver simulator
# (kernels emulated on the CPU; not a GPU); onnximport's show imported networks,
# bilinear resizes included, train there.
CUDA_PKGS := ./engine ./engine/nn ./engine/optim ./engine/checkpoint ./engine/enginetest ./onnximport

.PHONY: setup setup-arm64 build build-arm64 test test-arm64 vet demo clean ptx

setup:
	@scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/gidedge

# arm64 (Jetson-class) cross build with cgo, and its checks under qemu-user:
# Debian's cross compilers and an arm64 sysroot in third_party/ (docs/jetson.md).
setup-arm64: setup
	@scripts/setup.sh --arm64

build-arm64: setup-arm64
	scripts/build_arm64.sh bin/linux-arm64/gidedge

# The emulated checks compare bin/linux-arm64/gidedge under qemu with bin/gidedge.
test-arm64: build build-arm64
	$(GO) vet -tags emulated ./cmd/gidedge
	$(GO) test -count=1 -tags emulated -timeout 20m -run TestArm64Emulated -v ./cmd/gidedge

vet: setup
	$(GO) vet ./...

test: setup
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build $(NOCGO_PKGS)
	$(GO) test -count=1 -timeout 20m ./...
	GIDEDGE_DEVICE=ref $(GO) test -count=1 -short -timeout 20m $(REF_PKGS)
	GIDEDGE_DEVICE=cuda GIDEDGE_CUDA_LIBS="$$($(GO) run ./engine/cuda/sim/cmd/cudasim)" $(GO) test -count=1 -short -timeout 20m $(CUDA_PKGS)
	$(GO) test -count=1 -short -race -timeout 20m $(RACE_PKGS)
	# Without cgo the CUDA binding still compiles and reports itself unavailable.
	CGO_ENABLED=0 $(GO) test -count=1 ./engine/cuda/driver
	$(MAKE) test-arm64

# The CUDA kernels' PTX (engine/cuda/kernels/ptx), compiled by clang-16 from
# the .cu sources; commit the result. The tests fail when it is stale.
ptx: setup
	scripts/build_ptx.sh

# The whole product on the embedded default: synthetic data, teacher, student,
# GID, evaluation, ONNX export, INT8, latency and runs/demo/REPORT.md.
demo: build
	$(BIN) doctor
	$(BIN) demo

clean:
	rm -rf bin runs .cache/cudasim
