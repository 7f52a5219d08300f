#!/usr/bin/env bash
# Quantizes every model in ../shared/models plus the YOLOX-like test model
# (and its purely-random-filter stress variant) with gidedge quantize and
# prints one markdown table: CPU time per run of the fp32 file, the cleaned-up
# fp32 graph and int8 (ONNX Runtime, interleaved runs in one process), the
# speed-up against the clean graph, the smallest output cosine, COCO AP on
# COCO128 where labels exist, and AP of the int8 detections against the fp32
# model's own.
#
#   scripts/bench_quantize.sh [CONFIGS]     # default: new,old
#
# CONFIGS: new (the defaults), old (--equalize=false --activation-aware=false,
# the behaviour before issue 16), probe (new + --speed-probe), fallback (the
# random YOLOX-like variant with --min-cosine 0.98).
# Environment: CALIB_IMAGES (128), RUNS (200), THREADS (1: CPU time per run is
# then the inference's own cost, robust to other load), OUT (runs/quantize),
# GIDEDGE (bin/gidedge), SHARED (../shared), EXTRA (more quantize flags).
# Calibration and COCO AP both use COCO128's 128 images (the only labelled COCO
# images here): read the fp32 → int8 gap, not the absolute AP.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
configs="${1:-new,old}"
calib_images="${CALIB_IMAGES:-128}"
runs="${RUNS:-200}"
threads="${THREADS:-1}"
out="${OUT:-runs/quantize}"
gidedge="${GIDEDGE:-bin/gidedge}"
shared="${SHARED:-../shared}"
coco="$shared/data/coco128"

if [ ! -x "$gidedge" ]; then
  echo "bench_quantize: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
mkdir -p "$out"
# The YOLOX-like models: YOLOX-Tiny's widths at 416, batch-norm statistics
# measured on 16 COCO128 images; filters are data patches (the test model)
# or purely random (the stress variant that reproduces issue 16's symptom).
for variant in patch random; do
  model="$out/yoloxlike_$variant.onnx"
  share=0
  [ "$variant" = random ] && share=1
  if [ ! -f "$model" ]; then
    echo "bench_quantize: writing $model" >&2
    go run ./benchmarks/yoloxlike --calib "$coco/images" --out "$model" --random-share "$share" --threads "$threads" >&2
  fi
done

echo "Host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, flags: $(grep -o -m1 -w 'avx512_vnni\|avx_vnni\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); ONNX Runtime intra-op threads: $threads; $runs interleaved runs per model."
echo
echo "| model | config | CPU ms fp32 file / clean / int8 | speed-up vs clean (CPU) | wall ms clean / int8 | min cosine | AP fp32 → int8 (drop) | AP int8 vs fp32 | float layers |"
echo "|---|---|---|---|---|---|---|---|---|"
row() { # name config json
  jq -r --arg model "$1" --arg cfg "$2" '
    def r2(x): (x*100|round/100);
    def ap(x): if x == null then "–" else (x*100|round/100|tostring) end;
    "| \($model) | \($cfg) | \(r2(.fp32.cpu_ms)) / \(r2(.fp32_prepared.cpu_ms)) / \(r2(.int8.cpu_ms)) | \(r2(.fp32_prepared.cpu_ms/.int8.cpu_ms))× | \(r2(.fp32_prepared.latency_ms)) / \(r2(.int8.latency_ms)) | \(.cosine_min*10000|round/10000) | \(ap(.fp32.ap)) → \(ap(.int8.ap)) (\(ap(.ap_drop))) | \(ap(.int8.ap_vs_fp32)) | \(.float_layers|length) |"' "$3"
}
for cfg in ${configs//,/ }; do
  case "$cfg" in
    new) flags=() ;;
    old) flags=(--equalize=false --activation-aware=false) ;;
    probe) flags=(--speed-probe) ;;
    fallback) flags=(--min-cosine 0.98) ;;
    *) echo "bench_quantize: unknown config $cfg" >&2; exit 2 ;;
  esac
  for model in nanodet_m_320 ultraface_rfb_320 yoloxlike_patch yoloxlike_random; do
    if [ "$cfg" = fallback ] && [ "$model" != yoloxlike_random ]; then
      continue
    fi
    path="$shared/models/$model.onnx"
    [ -f "$path" ] || path="$out/$model.onnx"
    labels=()
    [ "$model" = nanodet_m_320 ] && labels=(--labels "$coco")
    json="$out/${model}_$cfg.json"
    # shellcheck disable=SC2086
    if "$gidedge" quantize --model "$path" --calib "$coco/images" --calib-images "$calib_images" \
      --out "$out/${model}_$cfg.onnx" --bench-runs "$runs" --threads "$threads" "${labels[@]}" \
      "${flags[@]}" --json --quiet ${EXTRA:-} >"$json" 2>"$out/${model}_$cfg.err"; then
      row "$model" "$cfg" "$json"
    else
      echo "| $model | $cfg | failed: $(tail -n1 "$out/${model}_$cfg.err") |||||||"
    fi
  done
done
echo
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "ONNX Runtime ops of each int8 model (config new):"
for model in nanodet_m_320 ultraface_rfb_320 yoloxlike_patch yoloxlike_random; do
  json="$out/${model}_new.json"
  [ -s "$json" ] && echo "- $model: $(jq -r '.ort_ops | to_entries | map("\(.key) \(.value)") | join(", ")' "$json")"
done
