#!/usr/bin/env bash
# Trains teacher and student detectors from scratch on BCCD (blood cells,
# Pascal VOC) trainval and scores them on its test split: AP, AP50,
# per-class AP, train time, training images/s, step time and inference
# images/s. Prints a Markdown table and writes it, with every run folder,
# under OUT. Trainval has no held-out part, so each run is evaluated once,
# after its last epoch (no checkpoint selection on the test split).
#
#   scripts/bench_bccd.sh [MODEL[:EPOCHS]...]    (default: retinanet-teacher retinanet-student)
#
# Environment: OUT (runs/bench-bccd), DATA (../shared/data/bccd), SIZE (320),
# EPOCHS (12, unless a model names its own), BATCH (8), SEED (1), GIDEDGE
# (bin/gidedge). FCOS=1 adds the
# fcos-teacher/fcos-student pair to the default list.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-runs/bench-bccd}"
data="${DATA:-../shared/data/bccd}"
size="${SIZE:-320}"
epochs="${EPOCHS:-12}"
batch="${BATCH:-8}"
seed="${SEED:-1}"
gidedge="${GIDEDGE:-bin/gidedge}"
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(retinanet-teacher retinanet-student)
  if [ "${FCOS:-0}" = 1 ]; then
    models+=(fcos-teacher fcos-student)
  fi
fi
if [ ! -d "$data/Annotations" ]; then
  echo "bench_bccd: $data is not the BCCD VOC folder (set DATA)" >&2
  exit 1
fi

# train_eval MODEL DATA TRAIN VAL TEST [gidedge train flags...]: trains into
# $out/MODEL, then scores best.safetensors (last.safetensors without
# evaluation) on TEST with gidedge eval, timing it for inference images/s.
train_eval() {
  local m="$1" data="$2" tr="$3" va="$4" te="$5"
  shift 5
  echo "== $m: training on $tr" >&2
  "$gidedge" train --model "$m" --data "$data" --train-split "$tr" --val-split "$va" \
    --out "$out/$m" --quiet "$@" | tee "$out/$m.train.log" >&2
  local ckpt="$out/$m/best.safetensors"
  [ -f "$ckpt" ] || ckpt="$out/$m/last.safetensors"
  local t0 t1
  t0=$(date +%s.%N)
  "$gidedge" eval --checkpoint "$ckpt" --data "$data" --split "$te" --json --pr-curve "$out/$m.pr.png" >"$out/$m.test.json"
  t1=$(date +%s.%N)
  jq --arg s "$(echo "$t1 - $t0" | bc -l)" '{eval_seconds: ($s|tonumber)}' -n >"$out/$m.evaltime.json"
}

# table TITLE MODEL...: one Markdown row per model from the run folders.
table() {
  local title="$1"
  shift
  echo "### $title"
  echo
  echo "| model | params (M) | GFLOPs@$size | epochs | train time | train img/s | step ms | data wait ms | test AP | AP50 | AP75 | per-class AP | eval img/s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for m in "$@"; do
    jq -r -s --arg m "$m" '
      .[0] as $s | .[1] as $t | .[2] as $e |
      "| \($m) | \($s.hparams.params/1e6*1000|round/1000) | \($s.hparams.gflops*1000|round/1000) | \($s.epochs) | \($s.train_seconds|round) s | \($s.train_images_per_s*10|round/10) | \($s.step_ms|round) | \($s.data_wait_ms*10|round/10) | \($t.AP*1000|round/1000) | \($t.AP50*1000|round/1000) | \($t.AP75*1000|round/1000) | \([$t.per_class[] | "\(.name) \(.AP*1000|round/1000)"] | join(", ")) | \($t.images/$e.eval_seconds*10|round/10) |"' \
      "$out/$m/summary.json" "$out/$m.test.json" "$out/$m.evaltime.json"
  done
  echo
  echo "Command: $cmdline"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
  echo "eval img/s is gidedge eval end to end (model load, JPEG decode, resize, forward, NMS) over the test split."
}

if [ ! -x "$gidedge" ]; then
  echo "bench_synth: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
cmdline="OUT=$out DATA=$data SIZE=$size EPOCHS=$epochs BATCH=$batch SEED=$seed scripts/bench_bccd.sh ${models[*]}"
if [ ! -x "$gidedge" ]; then
  echo "bench_bccd: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
mkdir -p "$out"
names=()
for spec in "${models[@]}"; do
  m="${spec%%:*}"
  e="$epochs"
  [ "$m" != "$spec" ] && e="${spec#*:}"
  names+=("$m")
  train_eval "$m" "$data" trainval test test --epochs "$e" --batch "$batch" --img-size "$size" --seed "$seed" --eval-every "$e"
done
table "BCCD trainval ($(wc -l <"$data/ImageSets/Main/trainval.txt") images) → test ($(wc -l <"$data/ImageSets/Main/test.txt") images), ${size}px, seed $seed" "${names[@]}" | tee "$out/RESULTS.md"
