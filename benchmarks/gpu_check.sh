#!/usr/bin/env bash
# The GPU check of gidedge's CUDA path, in two halves.
#
#   benchmarks/gpu_check.sh prepare
#       Here, on the build machine (Go with cgo): builds the test binaries of
#       engine/cuda/driver and engine/cuda/kernels and packs them, with the
#       libraries they need that a CUDA image may lack (OpenBLAS for the
#       engine, which the kernel tests use as their oracle), into
#       .gpu_check/bundle.tar.gz (git-ignored). The GPU machine has no Go and
#       no network, so everything is built here.
#
#   benchmarks/gpu_check.sh run
#       On the GPU machine, from the repository root, with .gpu_check carried
#       along. Writes under $OUT (default runs/gpu_check):
#         nvidia-smi.txt     the GPU, driver and CUDA version
#         header_check.txt   cuda_header_check.c against the installed CUDA,
#                            cuBLAS, NVML and cuDNN headers
#         ptxas.txt          NVIDIA's ptxas on the embedded PTX for sm_90
#                            (registers, spills, errors)
#         driver_tests.txt   the driver package's tests on the real libraries
#                            (the simulator-only fault tests are left out)
#         kernel_tests.txt   every kernel against the engine's CPU ops, on the
#                            emulation and on the GPU
#         sanitizer.txt      compute-sanitizer memcheck over the kernel tests
#                            and racecheck over the kernels with barriers
#         summary.txt        one line per step: ok or FAILED, seconds
#       With the device tool: run "benchmarks/gpu_check.sh run", carry
#       [".gpu_check"], timeout_s 540 (the whole check takes a few minutes).
#       CUDA_INCLUDE overrides the CUDA header folder and a GIDEDGE_CUDA_LIBS
#       already set overrides the library search, so the run half can be
#       rehearsed here against the simulator and Debian's CUDA headers.
#
# Phase 2 adds a tiny train + distill run and timings (GID step and plain
# student step at 320 px, batch 32, against PyTorch eager).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle_dir="$root/.gpu_check"

prepare() {
  set -e
  local work="$bundle_dir/work"
  rm -rf "$work"
  mkdir -p "$work/lib"
  (cd "$root" && CGO_ENABLED=1 go test -c -o "$work/driver.test" ./engine/cuda/driver)
  (cd "$root" && CGO_ENABLED=1 go test -c -o "$work/kernels.test" ./engine/cuda/kernels)
  # Libraries outside glibc and the C++ runtime: the CUDA image has those
  # (PyTorch needs them), and an older copy here could shadow its newer one.
  ldd "$work/driver.test" "$work/kernels.test" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      *) cp -L "$lib" "$work/lib/" ;;
    esac
  done
  tar -czf "$bundle_dir/bundle.tar.gz" -C "$work" .
  rm -rf "$work"
  echo "gpu_check: $(du -h "$bundle_dir/bundle.tar.gz" | cut -f1) in ${bundle_dir#$root/}/bundle.tar.gz; carry .gpu_check and run: benchmarks/gpu_check.sh run"
}

out="${OUT:-$root/runs/gpu_check}"
summary=""

# step NAME FILE COMMAND...: runs COMMAND with its output in $out/FILE,
# appending to it, and records the outcome.
step() {
  local name="$1" file="$2"
  shift 2
  local start=$SECONDS status
  echo "== $name: $*" >>"$out/$file"
  "$@" >>"$out/$file" 2>&1
  status=$?
  local took=$((SECONDS - start))
  if [ $status = 0 ]; then
    summary+="ok      ${took}s  $name"$'\n'
  else
    summary+="FAILED  ${took}s  $name (exit $status; see $file)"$'\n'
  fi
  echo "gpu_check: $name: exit $status after ${took}s"
}

run() {
  mkdir -p "$out"
  rm -f "$out"/*.txt
  [ -f "$bundle_dir/bundle.tar.gz" ] || { echo "gpu_check: no .gpu_check/bundle.tar.gz: run benchmarks/gpu_check.sh prepare on the build machine and carry .gpu_check" >&2; exit 2; }
  local work
  work="$(mktemp -d)"
  tar -xzf "$bundle_dir/bundle.tar.gz" -C "$work"
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

  step "nvidia-smi" nvidia-smi.txt nvidia-smi

  # The CUDA libraries where pip put them (site-packages/nvidia/*/lib);
  # libcuda.so.1 itself comes from the driver, on the loader's path.
  local py libs cuda_inc cudnn_inc
  py="$(command -v python3 || true)"
  if [ -n "$py" ]; then
    libs="$("$py" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
dirs = []
for base in (spec.submodule_search_locations if spec else []) or []:
    dirs += sorted(str(p) for p in pathlib.Path(base).glob("*/lib"))
print(":".join(dirs))
PY
)"
    cudnn_inc="$("$py" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("nvidia"); print(next((str(p) for b in (s.submodule_search_locations or []) for p in pathlib.Path(b).glob("cudnn/include")), ""))' 2>/dev/null)"
  fi
  # A GIDEDGE_CUDA_LIBS already set wins (e.g. to rehearse on the simulator).
  export GIDEDGE_CUDA_LIBS="${GIDEDGE_CUDA_LIBS:-${libs:-/usr/local/cuda/lib64}}"
  echo "GIDEDGE_CUDA_LIBS=$GIDEDGE_CUDA_LIBS" >>"$out/driver_tests.txt"

  cuda_inc="${CUDA_INCLUDE:-/usr/local/cuda/include}"
  if [ -z "${CUDA_INCLUDE:-}" ] && command -v nvcc >/dev/null; then
    cuda_inc="$(dirname "$(dirname "$(command -v nvcc)")")/include"
  fi
  local cudnn_flags=()
  if [ -n "${cudnn_inc:-}" ] && [ -f "$cudnn_inc/cudnn.h" ]; then
    cudnn_flags=(-DGD_CHECK_CUDNN "-I$cudnn_inc")
  else
    echo "cudnn.h not found: cuDNN's declarations are not checked" >>"$out/header_check.txt"
  fi
  step "declarations vs NVIDIA headers" header_check.txt \
    "${CC:-cc}" -fsyntax-only -Wall "-I$cuda_inc" "${cudnn_flags[@]}" "$root/benchmarks/cuda_header_check.c"

  if command -v ptxas >/dev/null; then
    for f in "$root"/engine/cuda/kernels/ptx/*.ptx; do
      step "ptxas sm_90 $(basename "$f")" ptxas.txt ptxas -arch=sm_90 -v -o /dev/null "$f"
    done
  else
    summary+="FAILED  0s  ptxas (not on PATH)"$'\n'
  fi

  step "driver tests on the GPU" driver_tests.txt \
    timeout 300 "$work/driver.test" -test.v -test.count=1 -test.skip '^TestFaults$'
  step "kernel tests on the GPU" kernel_tests.txt \
    timeout 300 "$work/kernels.test" -test.v -test.count=1 -test.skip '^TestPTXCompilesWithClang$'
  if command -v compute-sanitizer >/dev/null; then
    step "compute-sanitizer memcheck" sanitizer.txt \
      timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 "$work/kernels.test" -test.count=1 -test.skip '^TestPTXCompilesWithClang$'
    step "compute-sanitizer racecheck (barrier kernels)" sanitizer.txt \
      timeout 240 compute-sanitizer --tool racecheck --error-exitcode 3 "$work/kernels.test" -test.count=1 \
      -test.run 'Reduce|Softmax|CrossEntropy|BatchNorm|Depthwise|ClipGradNorm'
  else
    summary+="FAILED  0s  compute-sanitizer (not on PATH)"$'\n'
  fi

  rm -rf "$work"
  printf '%s' "$summary" | tee "$out/summary.txt"
  ! grep -q FAILED "$out/summary.txt"
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
