#!/usr/bin/env bash
# Quantizes NanoDet-m and UltraFace with each calibration method and prints a
# markdown table: fp32 vs int8 latency (median and p99, ONNX Runtime on this
# machine, fp32 and int8 runs interleaved), file size, the smallest output
# cosine similarity, and COCO mAP on COCO128 for NanoDet.
#
#   scripts/bench_quantize.sh [METHODS]        # default: minmax,percentile,entropy
#
# Environment: CALIB_IMAGES (128), RUNS (200), THREADS (1: CPU time per run is then the
# inference cost, robust to other load; 0 = ONNX Runtime's choice, whose idle threads spin),
# ACTIVATIONS (uint8), EXTRA (more `gidedge quantize` flags), OUT (runs/quantize),
# GIDEDGE (bin/gidedge), SHARED (../shared).
# Calibration and mAP both use COCO128's 128 images (the only labelled COCO
# images here), so the mAP is optimistic in absolute terms; the fp32-int8 gap
# is what to read. The per-run JSON reports stay in OUT.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
methods="${1:-minmax,percentile,entropy}"
calib_images="${CALIB_IMAGES:-128}"
runs="${RUNS:-200}"
threads="${THREADS:-1}"
act="${ACTIVATIONS:-uint8}"
out="${OUT:-runs/quantize}"
gidedge="${GIDEDGE:-bin/gidedge}"
shared="${SHARED:-../shared}"
coco="$shared/data/coco128"

if [ ! -x "$gidedge" ]; then
  echo "bench_quantize: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
mkdir -p "$out"

echo "Wall ms: median (p99). CPU ms: process CPU time per inference. \"fp32 file\" is the model as given,"
echo "\"fp32 clean\" the same graph after quantize's clean-up (no initializer inputs, BN folded)."
echo
echo "| model | method | act | wall ms fp32 file / clean / int8 | CPU ms fp32 file / clean / int8 | speed-up vs file / clean (CPU) | size fp32 → int8 | min cosine | AP fp32 → int8 (drop) | AP50 fp32 → int8 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for model in nanodet_m_320 ultraface_rfb_320; do
  labels=()
  if [ "$model" = nanodet_m_320 ]; then
    labels=(--labels "$coco")
  fi
  for method in ${methods//,/ }; do
    json="$out/${model}_${method}_${act}.json"
    # shellcheck disable=SC2086
    "$gidedge" quantize --model "$shared/models/$model.onnx" --calib "$coco/images" \
      --calib-images "$calib_images" --out "$out/${model}_${method}_${act}.onnx" \
      --method "$method" --activations "$act" --bench-runs "$runs" --threads "$threads" \
      "${labels[@]}" --json --quiet ${EXTRA:-} >"$json"
    jq -r --arg model "$model" '
      def r2(x): (x*100|round/100);
      def ms(s): "\(r2(s.latency_ms)) (\(r2(s.latency_p99_ms)))";
      def mib(b): "\(b/1048576*100|round/100) MiB";
      def ap(x): if x == null then "–" else (x*100|round/100|tostring) end;
      "| \($model) | \(.method)\(if .method == "percentile" then " \(.percentile)" else "" end) | \(.activations) | \(ms(.fp32)) / \(ms(.fp32_prepared)) / \(ms(.int8)) | \(r2(.fp32.cpu_ms)) / \(r2(.fp32_prepared.cpu_ms)) / \(r2(.int8.cpu_ms)) | \(r2(.fp32.cpu_ms/.int8.cpu_ms))× / \(r2(.fp32_prepared.cpu_ms/.int8.cpu_ms))× | \(mib(.fp32.size_bytes)) → \(mib(.int8.size_bytes)) | \(.cosine_min*100000|round/100000) | \(ap(.fp32.ap)) → \(ap(.int8.ap)) (\(ap(.ap_drop))) | \(ap(.fp32.ap50)) → \(ap(.int8.ap50)) |"' "$json"
  done
done
echo
echo "ONNX Runtime ops of the last int8 model of each kind (what runs in 8 bits):"
for model in nanodet_m_320 ultraface_rfb_320; do
  last="$(ls -t "$out/${model}"_*_"$act".json | head -n1)"
  echo "- $model: $(jq -r '.ort_ops | to_entries | map("\(.key) \(.value)") | join(", ")' "$last")"
done
