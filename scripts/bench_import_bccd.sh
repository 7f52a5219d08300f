#!/usr/bin/env bash
# Pretrained edge models on real data (issue 20): NanoDet-m's COCO-pretrained
# ShuffleNetV2 backbone and PAN neck, imported with `gidedge import`, under
# gidedge's RetinaNet student head, on BCCD (trainval → test, 320 px):
#
#   student            retinanet-student (MobileNetV2) from scratch: the
#                      reference student of the GID benchmarks
#   nanodet-scratch    the NanoDet backbone + neck with random weights (the
#                      import with --unfold-bn, so every convolution has a
#                      batch norm and the network can train from scratch)
#   nanodet-pretrained the NanoDet backbone + neck with its COCO weights,
#                      frozen for the first FREEZE epochs, trained alone
#   nanodet-gid        the same, distilled with GID from the BCCD teacher
#   teacher            retinanet-teacher (ResNet), TEACHER_EPOCHS epochs, trained
#                      when the first GID row needs it
#
# then exports the GID student to ONNX, quantizes it to INT8 (calibrated on
# the training images) and times it in process and served by `gidedge
# serve`, beside NanoDet-m's own ONNX model.
#
#   scripts/bench_import_bccd.sh            (everything not done yet)
#   TABLE_ONLY=1 scripts/bench_import_bccd.sh
#
# Every stage is skipped once its result is there (summary.json, a
# .test.json, an .onnx), so the script resumes where it stopped; seeds go
# outermost, so one seed of every row is done before the next seed starts.
# Run it under `nice -n 19` on a shared machine.
#
# Environment: OUT (runs/import-bccd), SEEDS ("1 2 3"), EPOCHS (8: the
# students), TEACHER_EPOCHS (12), FREEZE (2), BATCH (8), SIZE (320),
# BCCD (../shared/data/bccd), NANODET (../shared/models/nanodet_m_320.onnx),
# GIDEDGE (bin/gidedge), LATENCY_N (200).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-runs/import-bccd}"
seeds="${SEEDS:-1 2 3}"
epochs="${EPOCHS:-8}"
teacher_epochs="${TEACHER_EPOCHS:-12}"
freeze="${FREEZE:-2}"
batch="${BATCH:-8}"
size="${SIZE:-320}"
data="${BCCD:-$root/../shared/data/bccd}"
nanodet="${NANODET:-$root/../shared/models/nanodet_m_320.onnx}"
gidedge="${GIDEDGE:-bin/gidedge}"
latency_n="${LATENCY_N:-200}"
rows=(student nanodet-scratch nanodet-pretrained nanodet-gid)

if [ ! -x "$gidedge" ]; then
  echo "bench_import_bccd: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
mkdir -p "$out"
cmdline="OUT=$out SEEDS=\"$seeds\" EPOCHS=$epochs TEACHER_EPOCHS=$teacher_epochs FREEZE=$freeze BATCH=$batch SIZE=$size scripts/bench_import_bccd.sh"
common=(--data "$data" --train-split trainval --val-split test --batch "$batch" --img-size "$size" --quiet)

# score RUN: the run's checkpoint (evaluated once, after its last epoch, so
# best is last and nothing is picked on test) scored on test.
score() {
  local run="$1" ckpt="$1/best.safetensors"
  [ -f "$ckpt" ] || ckpt="$1/last.safetensors"
  [ -s "$run.test.json" ] || { "$gidedge" eval --checkpoint "$ckpt" --data "$data" --split test --json >"$run.test.json.tmp" && mv "$run.test.json.tmp" "$run.test.json"; }
}

# NanoDet-m reads BGR pixels normalised by these means and stds.
nanodet_flags=(--onnx "$nanodet" --take all --outputs 528,743,846,861,867,873 --bgr
  --mean 103.53,116.28,123.675 --std 57.375,57.12,58.395 --config retinanet-student --size "$size" --threads 1)

if [ -z "${TABLE_ONLY:-}" ]; then
  [ -f "$out/nanodet.json" ] || "$gidedge" import "${nanodet_flags[@]}" --name nanodet-m-retinanet \
    --out "$out/nanodet.safetensors" >"$out/import.log"
  [ -f "$out/nanodet-bn.json" ] || "$gidedge" import "${nanodet_flags[@]}" --unfold-bn --name nanodet-m-retinanet-bn \
    --out "$out/nanodet-bn.safetensors" >"$out/import-bn.log"
  # The teacher is trained when the first GID row needs it, so the rows
  # without one come first.
  teacher() {
    if [ ! -f "$out/teacher/summary.json" ]; then
      echo "== teacher retinanet-teacher" >&2
      if [ -f "$out/teacher/last.safetensors" ]; then
        "$gidedge" train --out "$out/teacher" --resume --quiet >>"$out/teacher.log"
      else
        "$gidedge" train --model retinanet-teacher "${common[@]}" --epochs "$teacher_epochs" --eval-every "$teacher_epochs" \
          --seed 1 --out "$out/teacher" >>"$out/teacher.log"
      fi
    fi
    score "$out/teacher"
  }
  for seed in $seeds; do
    for row in "${rows[@]}"; do
      [ "$row" != nanodet-gid ] || teacher
      run="$out/$row-s$seed"
      if [ ! -f "$run/summary.json" ]; then
        echo "== $row seed $seed" >&2
        args=("${common[@]}" --epochs "$epochs" --eval-every "$epochs" --seed "$seed" --out "$run")
        [ ! -f "$run/last.safetensors" ] || args=(--out "$run" --resume --quiet)
        case "$row" in
          student) "$gidedge" train --model retinanet-student "${args[@]}" >>"$run.log" ;;
          nanodet-scratch) "$gidedge" train --model "$out/nanodet-bn.json" --pretrained none "${args[@]}" >>"$run.log" ;;
          nanodet-pretrained) "$gidedge" train --model "$out/nanodet.json" --freeze-backbone-epochs "$freeze" "${args[@]}" >>"$run.log" ;;
          nanodet-gid)
            if [ -f "$run/last.safetensors" ]; then
              "$gidedge" distill "${args[@]}" >>"$run.log"
            else
              "$gidedge" distill --teacher "$out/teacher/best.safetensors" --student "$out/nanodet.json" \
                --freeze-backbone-epochs "$freeze" "${args[@]}" >>"$run.log"
            fi ;;
        esac
      fi
      score "$run"
    done
  done
  # Deployment: the seed-1 GID student to ONNX and INT8, timed beside
  # NanoDet-m's own model, in process and served.
  dep="$out/deploy"
  mkdir -p "$dep"
  if [ -f "$out/nanodet-gid-s1/summary.json" ]; then
    [ -f "$dep/student.onnx" ] || "$gidedge" export --checkpoint "$out/nanodet-gid-s1/best.safetensors" --out "$dep/student.onnx" --threads 1 >"$dep/export.log"
    # Calibration sees the training images only.
    if [ ! -d "$dep/calib" ]; then
      mkdir -p "$dep/calib.tmp"
      while read -r id; do ln -sf "$data/JPEGImages/$id.jpg" "$dep/calib.tmp/$id.jpg"; done <"$data/ImageSets/Main/trainval.txt"
      mv "$dep/calib.tmp" "$dep/calib"
    fi
    [ -f "$dep/student_int8.onnx" ] || "$gidedge" quantize --model "$dep/student.onnx" --calib "$dep/calib" \
      --out "$dep/student_int8.onnx" --labels "$data" --labels-split test --report --threads 1 --quiet >"$dep/quantize.log"
    for m in student.onnx student_int8.onnx nanodet_m_320.onnx; do
      model="$dep/$m"
      [ "$m" != nanodet_m_320.onnx ] || model="$nanodet"
      [ -s "$dep/${m%.onnx}.latency.json" ] || {
        N="$latency_n" THREADS=1 CONCURRENCY=1 IMAGES="$data/JPEGImages" scripts/bench_latency.sh "$model" --json \
          >"$dep/${m%.onnx}.latency.json.tmp" && mv "$dep/${m%.onnx}.latency.json.tmp" "$dep/${m%.onnx}.latency.json"
      }
    done
  fi
fi

# Table: one row per model, mean ± sample std over the seeds found.
{
  echo "### NanoDet-m backbone + neck under gidedge's RetinaNet head on BCCD (trainval → test, ${size} px, $epochs epochs, seeds: $seeds)"
  echo
  echo "| model | params (M) | GFLOPs | test AP | AP50 | AP75 | step ms |"
  echo "|---|---|---|---|---|---|---|"
  if [ -s "$out/teacher.test.json" ]; then
    jq -r --slurpfile h "$out/teacher/hparams.json" --slurpfile s "$out/teacher/summary.json" \
      '"| teacher retinanet-teacher (\($h[0].epochs) epochs, 1 run) | \($h[0].params/1e4|round/100) | \($h[0].gflops*100|round/100) | \(.AP*10000|round/10000) | \(.AP50*10000|round/10000) | \(.AP75*10000|round/10000) | \($s[0].step_ms|round) |"' "$out/teacher.test.json"
  fi
  for row in "${rows[@]}"; do
    for s in $seeds; do
      [ -s "$out/$row-s$s.test.json" ] && [ -f "$out/$row-s$s/summary.json" ] || continue
      jq -r --slurpfile sum "$out/$row-s$s/summary.json" '"\(.AP) \(.AP50) \(.AP75) \($sum[0].step_ms) \($sum[0].hparams.params) \($sum[0].hparams.gflops)"' "$out/$row-s$s.test.json"
    done | awk -v m="$row" '
      { for (i = 1; i <= 6; i++) { s[i] += $i; q[i] += $i * $i } n++ }
      END {
        if (n == 0) exit
        printf "| %s (%d seed%s) | %.2f | %.2f |", m, n, (n > 1) ? "s" : "", s[5] / n / 1e6, s[6] / n
        for (i = 1; i <= 3; i++) {
          mean = s[i] / n; v = (n > 1) ? (q[i] - n * mean * mean) / (n - 1) : 0
          if (n > 1) printf " %.4f ± %.4f |", mean, sqrt(v > 0 ? v : 0); else printf " %.4f |", mean
        }
        printf " %.0f |\n", s[4] / n
      }'
  done
  echo
  dep="$out/deploy"
  if ls "$dep"/*.latency.json >/dev/null 2>&1; then
    echo "| deployed model (ONNX Runtime CPU, 1 thread) | in-process p50 ms | session p50 ms | served p50 ms |"
    echo "|---|---|---|---|"
    for f in "$dep"/*.latency.json; do
      jq -r --arg m "$(basename "$f" .latency.json)" '
        ([.results[] | select(.mode == "in-process")][0]) as $i | ([.results[] | select(.mode == "end-to-end")][0]) as $e
        | "| \($m) | \($i.p50_ms*10|round/10) | \($i.session_p50_ms*10|round/10) | \($e.p50_ms*10|round/10) |"' "$f"
    done
    [ ! -f "$dep/quantize.log" ] || { echo; echo '```'; tail -n 12 "$dep/quantize.log"; echo '```'; }
    echo
  fi
  echo "Command: nice -n 19 $cmdline"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags $(grep -o -m1 'avx512_vnni\|avx512f\|avx2' /proc/cpuinfo | tr '\n' ' '), $(date -u +%Y-%m-%d), load $(cut -d' ' -f1-3 /proc/loadavg); step ms is the mean wall time of a training step under the load of other jobs."
} | tee "$out/RESULTS.md"
