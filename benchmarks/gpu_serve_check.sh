#!/usr/bin/env bash
# GPU execution providers, checked on a GPU machine (the H200 of
# /work/.library/device/H200.md): no network there, Python 3.12 with the pip
# package onnxruntime 1.30, CUDA 13 libraries under site-packages/nvidia.
#
# Two halves, so device time goes to measuring only:
#
#   benchmarks/gpu_serve_check.sh --prepare   here: bin/gidedge, a gidedge
#       student exported to ONNX, NanoDet and 8 COCO128 images into the
#       git-ignored runs/gpu-check/ (carry "bin" and "runs/gpu-check")
#   benchmarks/gpu_serve_check.sh             there: writes $OUT/gpu-check.md
#       and the JSON reports; exits 0 whatever it finds, the file says what
#   ORT_DIR=third_party/onnxruntime-1.30.0/linux-x64 N=20 OUT=/tmp/g \
#     benchmarks/gpu_serve_check.sh           here, to try the script (CPU only)
#
# On the GPU machine it
#   1. finds the ONNX Runtime libraries of python3's onnxruntime package and
#      lists its provider libraries (libonnxruntime_providers_{cuda,tensorrt}.so):
#      the plain onnxruntime wheel is CPU-only, onnxruntime-gpu carries them;
#   2. checks that bin/gidedge starts there (it links Debian 12's OpenCV 4.6
#      and OpenBLAS shared libraries; runs/gpu-check/lib may carry them);
#   3. serves NanoDet and the student with --provider cpu, cuda and, when its
#      library is there, tensorrt (engines cached in $OUT/trt-cache), and
#      times each with bench latency --url: p50/p99 per provider.
# A step that cannot run says why in the report, and the later steps that
# need it are not attempted.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pack="$root/runs/gpu-check"

if [ "${1:-}" = "--prepare" ]; then
  set -e
  shared="$(cd "$root/.." && pwd)/shared"
  mkdir -p "$pack/images"
  (cd "$root" && make -s build)
  cp "$shared/models/nanodet_m_320.onnx" "$pack/"
  ls "$shared/data/coco128/images/"*.jpg | head -8 | xargs -I{} cp {} "$pack/images/"
  # A gidedge student: the quick demo trains and exports one in a minute or two.
  (cd "$root" && bin/gidedge demo --quick --out "$pack/demo" >/dev/null)
  student="$pack/demo/export/gid_student.onnx"
  [ -f "$student" ] || { echo "gpu_serve_check: the quick demo exported no $student" >&2; exit 1; }
  cp "$student" "$pack/student.onnx"
  rm -rf "$pack/demo"
  du -sh "$root/bin/gidedge" "$pack"
  echo "carry: bin runs/gpu-check"
  exit 0
fi

out="${OUT:-$root/runs/gpu-check/out}"
mkdir -p "$out"
report="$out/gpu-check.md"
say() { printf '%s\n' "$*" | tee -a "$report"; }
: >"$report"
say "# gidedge GPU execution-provider check ($(date -u +%FT%TZ))"
say ""
say '```'
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: no GPU here"; } | tee -a "$report"
say '```'

# 1. ONNX Runtime and its provider libraries.
# ORT_DIR overrides where the ONNX Runtime libraries are looked for (to try
# the script on a CPU machine with third_party/onnxruntime-*/linux-x64).
capi="${ORT_DIR:-$(python3 -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null)}"
n="${N:-200}"
say ""
say "## ONNX Runtime"
if [ -z "$capi" ] || [ ! -d "$capi" ]; then
  say "python3 has no onnxruntime package: nothing to load. Stop."
  exit 0
fi
say "python3 onnxruntime: $(python3 -c 'import onnxruntime; print(onnxruntime.__version__, onnxruntime.get_available_providers())' 2>&1 | tail -1)"
say '```'
ls -la "$capi"/*.so* 2>&1 | tee -a "$report"
say '```'
ortlib="$(ls "$capi"/libonnxruntime.so.1* 2>/dev/null | head -1)"
providers=(cpu)
for p in cuda tensorrt; do
  if [ -f "$capi/libonnxruntime_providers_$p.so" ]; then
    providers+=("$p")
    say "provider library present: libonnxruntime_providers_$p.so"
  else
    say "provider library ABSENT: libonnxruntime_providers_$p.so (this wheel cannot load --provider $p)"
  fi
done
[ -n "$ortlib" ] || { say "no libonnxruntime.so.1 in $capi. Stop."; exit 0; }

# The CUDA provider dlopens cuBLAS, cuDNN and the CUDA runtime: give it the
# pip CUDA libraries' folders.
nvlib="$(python3 -c 'import nvidia, os; print(":".join(sorted({os.path.join(r) for p in nvidia.__path__ for r, d, f in os.walk(p) if any(x.endswith(".so") or ".so." in x for x in f)})))' 2>/dev/null)"
export LD_LIBRARY_PATH="$pack/lib:$capi${nvlib:+:$nvlib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GIDEDGE_ORT_LIB="$ortlib"

# 2. Does bin/gidedge start here?
say ""
say "## gidedge on this machine"
bin="$root/bin/gidedge"
if [ ! -x "$bin" ]; then
  say "bin/gidedge was not carried (run --prepare here and carry bin). Stop."
  exit 0
fi
if ! "$bin" version >>"$report" 2>&1; then
  say "bin/gidedge does not start; the shared libraries it lacks:"
  say '```'
  ldd "$bin" 2>&1 | grep 'not found' | tee -a "$report"
  say '```'
  say "Carry Debian 12's OpenCV 4.6 / OpenBLAS runtime libraries in runs/gpu-check/lib, or build gidedge against this machine's. Stop."
  exit 0
fi
"$bin" doctor >>"$report" 2>&1
for p in cuda tensorrt; do
  if [[ " ${providers[*]} " != *" $p "* ]]; then
    say ""
    say "serve --provider $p with the library absent says:"
    say '```'
    timeout 120 "$bin" serve --model "$pack/nanodet_m_320.onnx" --provider "$p" --addr 127.0.0.1:0 2>&1 | tail -1 | tee -a "$report"
    say '```'
  fi
done

# 3. Serve each model with each provider and time it.
say ""
say "## Latency: bench latency --url against gidedge serve (n=$n, warm-up 20, concurrency 1)"
say ""
say "| model | provider | p50 ms | p99 ms | img/s | notes |"
say "|---|---|---|---|---|---|"
port=18080
for model in "$pack/nanodet_m_320.onnx" "$pack/student.onnx"; do
  name="$(basename "$model" .onnx)"
  for p in "${providers[@]}"; do
    port=$((port + 1))
    log="$out/serve-$name-$p.log"
    args=(serve --model "$model" --addr "127.0.0.1:$port" --provider "$p" --timeout 10m)
    [ "$p" = tensorrt ] && args+=(--trt-cache "$out/trt-cache")
    "$bin" "${args[@]}" >"$log" 2>&1 &
    pid=$!
    ready=""
    for _ in $(seq 1 600); do # TensorRT builds its engine before serving: minutes
      if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ready=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if [ -z "$ready" ]; then
      say "| $name | $p | - | - | - | serve did not start: $(tail -1 "$log" | tr '|' '/') |"
      kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
      continue
    fi
    json="$out/bench-$name-$p.json"
    if "$bin" bench latency --url "http://127.0.0.1:$port" --images "$pack/images" \
      --n "$n" --warmup 20 --concurrency 1 --json >"$json" 2>"$out/bench-$name-$p.err"; then
      read -r p50 p99 tput < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f %.2f %.1f" % (r["p50_ms"], r["p99_ms"], r["throughput"]))' "$json")
      say "| $name | $p | $p50 | $p99 | $tput | |"
    else
      say "| $name | $p | - | - | - | bench failed: $(tail -1 "$out/bench-$name-$p.err" | tr '|' '/') |"
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
done
[ -d "$out/trt-cache" ] && { say ""; say "TensorRT engine cache:"; ls -la "$out/trt-cache" | tee -a "$report"; }
exit 0
