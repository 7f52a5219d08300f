#!/usr/bin/env bash
# The GPU check of gidedge's CUDA path, in two halves.
#
#   benchmarks/gpu_check.sh prepare
#       Here, on the build machine (Go with cgo): builds the test binaries of
#       engine/cuda/driver, engine/cuda/kernels, engine/cuda (the backend and
#       its conformance suite) and engine (its tests, run on the cuda
#       device), and benchmarks/gpucheck (GID training and step timings;
#       the gidedge binary itself needs OpenCV's libraries, which the GPU
#       machine lacks), and packs them with the libraries they need that a
#       CUDA image may lack (OpenBLAS) into .gpu_check/bundle.tar.gz
#       (git-ignored). The GPU machine has no Go and no network.
#
#   benchmarks/gpu_check.sh run
#       On the GPU machine, from the repository root, with .gpu_check
#       carried. Steps run most important first, each under a timeout, and
#       a step is skipped when the time left (GPU_CHECK_BUDGET seconds,
#       default 540) is below its timeout. Writes under $OUT (default
#       runs/gpu_check), seven files:
#         summary.txt   one line per step (ok / FAILED / SKIPPED, seconds)
#                       and the timing table: gidedge's student and GID
#                       steps against PyTorch eager's student step and
#                       teacher forward
#         env.txt       nvidia-smi, the declarations checked against
#                       NVIDIA's headers, ptxas on the PTX for sm_90
#         tests.txt     the CUDA backend's tests with the conformance suite,
#                       the engine's tests on --device cuda, the driver's and
#                       the kernels' tests, on the real libraries
#         gid.txt       the GID run's log: synthetic data, a
#                       retinanet-teacher trained from scratch, 200 GID
#                       steps into a retinanet-student, its evaluation
#         gid.json      that run's figures (losses, AP, step times); the
#                       step fails unless the loss fell and it evaluated
#         timing.jsonl  gpucheck time (gidedge, cuda) and
#                       benchmarks/detector_pytorch.py (PyTorch eager,
#                       cuda) for the student and the teacher, 320 px,
#                       batch 32
#         sanitizer.txt compute-sanitizer memcheck over the conformance
#                       suite, racecheck over the kernels with barriers
#       With the device tool: command "benchmarks/gpu_check.sh run", carry
#       [".gpu_check"], timeout_s 570.
#
#       Sizes come from the environment, so the run half rehearses here on
#       the driver simulator (GIDEDGE_CUDA_LIBS=$(go run
#       ./engine/cuda/sim/cmd/cudasim), tiny sizes, torch on the CPU):
#         GPU_CHECK_GID_ARGS    gpucheck gid flags (default: 480 images of
#                               160 px, batch 8, teacher for 300 steps or
#                               90 s, 200 GID steps)
#         GPU_CHECK_TIME_ARGS   gpucheck time flags (default: 320 px, batch
#                               32, 10 steps after 3 of warm-up)
#         GPU_CHECK_TORCH_ARGS  detector_pytorch.py flags (default: 320 px,
#                               batch 32, 20 steps, --device cuda)
#         GPU_CHECK_TORCH       the replica script (default
#                               benchmarks/detector_pytorch.py)
#         GPU_CHECK_PYTHON      the Python with torch (default python3)
#       CUDA_INCLUDE overrides the CUDA header folder and a GIDEDGE_CUDA_LIBS
#       already set overrides the library search.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle_dir="$root/.gpu_check"

prepare() {
  set -e
  local work="$bundle_dir/work"
  rm -rf "$work"
  mkdir -p "$work/lib"
  cd "$root"
  export CGO_ENABLED=1
  go test -c -o "$work/driver.test" ./engine/cuda/driver
  go test -c -o "$work/kernels.test" ./engine/cuda/kernels
  go test -c -o "$work/cuda.test" ./engine/cuda
  go test -c -o "$work/engine.test" ./engine
  go build -o "$work/gpucheck" ./benchmarks/gpucheck
  # Libraries outside glibc and the C++ runtime: the CUDA image has those
  # (PyTorch needs them), and an older copy here could shadow its newer one.
  ldd "$work"/*.test "$work/gpucheck" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
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
budget="${GPU_CHECK_BUDGET:-540}"
summary=""

# step NAME FILE TIMEOUT COMMAND...: runs COMMAND under timeout with its
# output appended to $out/FILE, and records the outcome; skipped when less
# than TIMEOUT seconds of the budget are left.
step() {
  local name="$1" file="$2" limit="$3"
  shift 3
  if [ $((SECONDS + limit)) -gt "$budget" ]; then
    summary+="SKIPPED 0s    $name (needs up to ${limit}s, $((budget - SECONDS))s left)"$'\n'
    echo "gpu_check: $name: skipped, out of time"
    return 1
  fi
  local start=$SECONDS status
  echo "== $name: $*" >>"$out/$file"
  timeout --kill-after=10 "$limit" "$@" >>"$out/$file" 2>&1
  status=$?
  local took=$((SECONDS - start))
  if [ $status = 0 ]; then
    summary+="ok      $(printf '%-5s' "${took}s") $name"$'\n'
  elif [ $status = 124 ] || [ $status = 137 ]; then
    summary+="FAILED  $(printf '%-5s' "${took}s") $name (timed out after ${limit}s; see $file)"$'\n'
  else
    summary+="FAILED  $(printf '%-5s' "${took}s") $name (exit $status; see $file)"$'\n'
  fi
  echo "gpu_check: $name: exit $status after ${took}s"
  return $status
}

# at DIR COMMAND...: runs COMMAND (a step) in DIR, where package tests find
# their testdata.
at() {
  local dir="$1" status
  shift
  pushd "$dir" >/dev/null || return 1
  "$@"
  status=$?
  popd >/dev/null || return 1
  return $status
}

# missing NAME WHAT: records a step that cannot run.
missing() {
  summary+="FAILED  0s    $1 ($2)"$'\n'
  echo "gpu_check: $1: $2"
}

run() {
  mkdir -p "$out"
  rm -f "$out"/*.txt "$out"/*.json "$out"/*.jsonl
  [ -f "$bundle_dir/bundle.tar.gz" ] || { echo "gpu_check: no .gpu_check/bundle.tar.gz: run benchmarks/gpu_check.sh prepare on the build machine and carry .gpu_check" >&2; exit 2; }
  local work
  work="$(mktemp -d)"
  tar -xzf "$bundle_dir/bundle.tar.gz" -C "$work"
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

  if command -v nvidia-smi >/dev/null; then
    step "nvidia-smi" env.txt 30 nvidia-smi
  else
    missing "nvidia-smi" "not on PATH"
  fi

  # The CUDA libraries where pip put them (site-packages/nvidia/*/lib);
  # libcuda.so.1 itself comes from the driver, on the loader's path.
  local py libs="" cuda_inc cudnn_inc=""
  py="$(command -v "${GPU_CHECK_PYTHON:-python3}" || true)"
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
  echo "GIDEDGE_CUDA_LIBS=$GIDEDGE_CUDA_LIBS" >>"$out/tests.txt"

  cuda_inc="${CUDA_INCLUDE:-/usr/local/cuda/include}"
  if [ -z "${CUDA_INCLUDE:-}" ] && command -v nvcc >/dev/null; then
    cuda_inc="$(dirname "$(dirname "$(command -v nvcc)")")/include"
  fi
  local cudnn_flags=()
  if [ -n "$cudnn_inc" ] && [ -f "$cudnn_inc/cudnn.h" ]; then
    cudnn_flags=(-DGD_CHECK_CUDNN "-I$cudnn_inc")
  else
    echo "cudnn.h not found: cuDNN's declarations are not checked" >>"$out/env.txt"
  fi
  step "declarations vs NVIDIA headers" env.txt 30 \
    "${CC:-cc}" -fsyntax-only -Wall "-I$cuda_inc" "${cudnn_flags[@]}" "$root/benchmarks/cuda_header_check.c"

  # The backend on the real libraries: the conformance suite (with and
  # without cuDNN), pinned uploads, dropped buffers. The fault tests need
  # the simulator and stay here.
  at "$root/engine/cuda" step "CUDA backend: conformance suite and backend tests" tests.txt 150 \
    "$work/cuda.test" -test.v -test.count=1 -test.skip '^TestBackendFaults$'

  # 200 GID steps from a teacher trained from scratch, then the student
  # evaluated; gid.json has the figures.
  local gid_args=(${GPU_CHECK_GID_ARGS:---images 480 --size 160 --batch 8 --teacher-steps 300 --teacher-seconds 90 --steps 200})
  step "GID: teacher, 200 GID steps, evaluation" gid.txt 240 \
    "$work/gpucheck" gid --device cuda --out "$work/gid" "${gid_args[@]}"
  [ -f "$work/gid/gid.json" ] && cp "$work/gid/gid.json" "$out/gid.json"

  # Step timings: gidedge against PyTorch eager on the same architectures.
  local time_args=(${GPU_CHECK_TIME_ARGS:---size 320 --batch 32 --steps 10 --warmup 3})
  step "timing: gidedge student and GID steps" timing.jsonl 150 \
    "$work/gpucheck" time --device cuda "${time_args[@]}"
  local torch_script="${GPU_CHECK_TORCH:-$root/benchmarks/detector_pytorch.py}"
  local torch_args=(${GPU_CHECK_TORCH_ARGS:---size 320 --batch 32 --steps 20 --warmup 5 --device cuda --threads 8})
  if [ ! -f "$torch_script" ]; then
    missing "timing: PyTorch eager" "$torch_script is missing: it comes with the performance branch (benchmarks/detector_pytorch.py); merge it"
  elif [ -z "$py" ]; then
    missing "timing: PyTorch eager" "python3 not on PATH"
  else
    for model in retinanet-student retinanet-teacher; do
      step "timing: PyTorch eager $model" timing.jsonl 90 \
        env PYTHONUNBUFFERED=1 "$py" "$torch_script" --model "$model" "${torch_args[@]}" --json
    done
  fi

  # PyTorch runs cuDNN's convolutions in TF32 by default; gidedge's opt-in.
  step "timing: gidedge student and GID steps, TF32" timing.jsonl 150 \
    env GIDEDGE_CUDA_TF32=1 "$work/gpucheck" time --device cuda "${time_args[@]}"

  at "$root/engine" step "engine tests on --device cuda" tests.txt 120 \
    env GIDEDGE_DEVICE=cuda "$work/engine.test" -test.count=1 -test.short
  at "$root/engine/cuda/driver" step "driver tests" tests.txt 90 \
    "$work/driver.test" -test.v -test.count=1 -test.skip '^TestFaults$'
  at "$root/engine/cuda/kernels" step "kernel tests" tests.txt 120 \
    "$work/kernels.test" -test.count=1 -test.skip '^TestPTXCompilesWithClang$'

  if command -v ptxas >/dev/null; then
    for f in "$root"/engine/cuda/kernels/ptx/*.ptx; do
      step "ptxas sm_90 $(basename "$f")" env.txt 20 ptxas -arch=sm_90 -v -o /dev/null "$f"
    done
  else
    missing "ptxas" "not on PATH"
  fi
  if command -v compute-sanitizer >/dev/null; then
    at "$root/engine/cuda" step "compute-sanitizer memcheck (conformance suite)" sanitizer.txt 120 \
      compute-sanitizer --tool memcheck --error-exitcode 3 "$work/cuda.test" -test.count=1 -test.run '^TestConformance$'
    at "$root/engine/cuda/kernels" step "compute-sanitizer racecheck (kernels with barriers)" sanitizer.txt 90 \
      compute-sanitizer --tool racecheck --error-exitcode 3 "$work/kernels.test" -test.count=1 \
      -test.run 'Reduce|Softmax|CrossEntropy|BatchNorm|Depthwise|ClipGradNorm'
  else
    missing "compute-sanitizer" "not on PATH"
  fi

  rm -rf "$work"
  {
    printf '%s' "$summary"
    echo
    table
  } | tee "$out/summary.txt"
  ! grep -q '^FAILED' "$out/summary.txt"
}

# table prints gidedge's step times beside PyTorch's from timing.jsonl and
# the GID run's figures from gid.json.
table() {
  [ -n "$(command -v python3)" ] || return 0
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
path = os.path.join(out, "timing.jsonl")
if os.path.exists(path):
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "gid_step_ms" in r:
            rows["gidedge tf32" if r.get("tf32") else "gidedge"] = r
        elif "train_step_ms" in r:
            rows["torch " + r.get("model", "?")] = r
g, ts, tt = rows.get("gidedge"), rows.get("torch retinanet-student"), rows.get("torch retinanet-teacher")
for key in ("gidedge", "gidedge tf32"):
    r = rows.get(key)
    if r:
        print(f"gidedge ({r['device']}, {'TF32' if r.get('tf32') else 'FP32'}, {r['size']} px, batch {r['batch']}): student step {r['student_step_ms']:.1f} ms, "
              f"GID step {r['gid_step_ms']:.1f} ms, teacher forward {r['teacher_forward_ms']:.1f} ms")
if ts:
    print(f"PyTorch {ts.get('torch', '?')} ({ts['device']}): student step {ts['train_step_ms']:.1f} ms, student forward {ts['forward_ms']:.1f} ms")
if tt:
    print(f"PyTorch ({tt['device']}): teacher forward {tt['forward_ms']:.1f} ms, teacher step {tt['train_step_ms']:.1f} ms")
for key in ("gidedge", "gidedge tf32"):
    r = rows.get(key)
    label = "TF32" if key.endswith("tf32") else "FP32"
    if r and ts:
        print(f"student step ({label}), gidedge / PyTorch: {r['student_step_ms'] / ts['train_step_ms']:.2f}x")
    if r and ts and tt:
        floor = ts["train_step_ms"] + tt["forward_ms"]
        print(f"GID step ({label}), gidedge / (PyTorch student step + teacher forward = {floor:.1f} ms, a lower bound of a PyTorch GID step): {r['gid_step_ms'] / floor:.2f}x")
path = os.path.join(out, "gid.json")
if os.path.exists(path):
    r = json.load(open(path))
    print(f"GID run ({r['device']}, {r['size']} px, batch {r['batch']}): teacher {r['teacher_steps']} steps at {r['teacher_step_ms']:.1f} ms, "
          f"{r['steps']} GID steps at {r['step_ms']:.1f} ms, loss {r['first_loss']:.4f} -> {r['last_loss']:.4f} (fell: {r['loss_fell']}), "
          f"val AP {r['ap']:.4f} AP50 {r['ap50']:.4f}")
PY
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
