#!/usr/bin/env bash
# The whole GID comparison recorded in benchmarks/RESULTS.md, on the
# synthetic set and on BCCD, built from scripts/bench_distill.sh calls:
#
#   A  teacher, student baseline, GID and the three KD baselines, 3 seeds
#   B  every part alone and in pairs, K = 5 and 30, seed 1
#   D1 the student trained on the teacher's schedule (20 epochs instead of
#      8): baseline and GID over 3 seeds, fine-grained for 1
#   D2 a student with the teacher's architecture (8 epochs): baseline, GID
#   C  seed 2 of B, teachers with seeds 2 and 3 (their test AP gives the
#      teacher row its spread; students distil from the seed-1 teacher),
#      then seed 3 of B
#   E  why GID ties fine-grained imitation: K = 50, λ_rel 10, K = 30 with
#      λ_rel 10 (3 seeds); D2 and fine-grained of D1 over 3 seeds; the GI
#      types (--gi-mode gt-only, positive, semi, negative; seed 1)
#   F  why GID trails the teacher: a 2.4 M-parameter ResNet student
#      (benchmarks/configs/retinanet-mid.json, half the teacher) on the
#      teacher's schedule, 3 seeds; the teacher's architecture distilled
#      on that schedule (GID, seed 1)
#   G  the FCOS pair (fcos-teacher 20 epochs → fcos-student): baseline
#      and GID, seed 1
#   H  the two-stage pair (faster-rcnn-teacher 20 epochs →
#      faster-rcnn-student FRCNN_EPOCHS, 15): student baseline, GID and the three
#      KD baselines, seed 1 first, then seeds 2 and 3; then the teacher
#      with seeds 2 and 3 (the teacher row's spread)
#   L  (synthetic set only) latency of the exported students side by side:
#      faster-rcnn-student (H's seed-1 baseline) against retinanet-student
#      and fcos-student trained alone on its schedule, in process,
#      one ONNX Runtime thread, with their test mAP
#
#   scripts/bench_distill_grid.sh [synth|bccd ...]   (default: both)
#
# STAGES picks the stages: "all" (default) runs A–H and L, "frcnn" only H
# and L (the two-stage grid; its synthetic set is generated as the
# one-stage grid's is, so the two share their data).
#
# Each data set runs as its own queue on one core (GOMAXPROCS=1), both at
# once, so step times are comparable within a queue. Finished runs are
# skipped, so the grid resumes where it stopped; stop it at any point and
# `TABLE_ONLY=1 scripts/bench_distill.sh ...` prints what exists, each row
# with the number of seeds it found.
#
# Environment: ROOT (runs: where the runs go), GIDEDGE (bin/gidedge),
# EPOCHS (8), LONG_EPOCHS (20: the teacher's schedule), FRCNN_EPOCHS (15:
# stage H's students and stage L's; a two-stage student is still far from
# converged after 8), SIZE (160),
# BCCD (../shared/data/bccd), STAGES (all). On a shared machine run it
# under `nice -n 19`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${ROOT:-runs}"
epochs="${EPOCHS:-8}"
long="${LONG_EPOCHS:-20}"
frcnn_epochs="${FRCNN_EPOCHS:-15}"
size="${SIZE:-160}"
bccd="${BCCD:-$root/../shared/data/bccd}"
export GIDEDGE="${GIDEDGE:-bin/gidedge}"
if [ ! -x "$GIDEDGE" ]; then
  go build -o "$GIDEDGE" ./cmd/gidedge
fi
stages="${STAGES:-all}"
case "$stages" in
  all | frcnn) ;;
  *) echo "bench_distill_grid: STAGES=$stages, want all or frcnn" >&2; exit 2 ;;
esac
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(synth bccd)

core=(baseline gid fitnet fine-grained response-kd)
parts=(baseline gid gid-feat gid-rel gid-resp gid-feat-rel gid-feat-resp gid-rel-resp gid-k5 gid-k30)

# teacher MODEL SEED DIR: trains a teacher on the long schedule into DIR
# unless it is there (DATA, the splits and LONG_EVAL from the caller).
teacher() {
  mkdir -p "$(dirname "$3")"
  [ -f "$3/summary.json" ] || "$GIDEDGE" train --model "$1" --data "$DATA" \
    --train-split "${TRAIN_SPLIT:-train}" --val-split "${VAL_SPLIT:-val}" --epochs "$long" --batch 8 \
    --img-size "$size" --seed "$2" --eval-every "$LONG_EVAL" --out "$3" --quiet >"$3.log"
}

# twostage NAME: stage H for one data set (the caller's variables as for
# grid). On the synthetic set bench_distill.sh trains the teacher (best on
# validation); on BCCD the caller's teacher function does, evaluated once.
twostage() {
  local name="$1" o="$runs/gid-$1-frcnn" log="$OUT/grid.log"
  local -a pair=(TEACHER_MODEL=faster-rcnn-teacher STUDENT=faster-rcnn-student TEACHER_EPOCHS="$long"
    EPOCHS="$frcnn_epochs" EVAL_EVERY=5)
  mkdir -p "$o"
  if [ "$name" = bccd ]; then
    # Evaluated once, after the last epoch, like the one-stage BCCD rows.
    pair+=(EVAL_EVERY="$frcnn_epochs")
    teacher faster-rcnn-teacher 1 "$o/teacher"
    pair+=(TEACHER="$o/teacher/best.safetensors")
  fi
  env OUT="$o" "${pair[@]}" SEEDS="1" scripts/bench_distill.sh "${core[@]}" >"$o/tableH.md" 2>>"$log"
  env OUT="$o" "${pair[@]}" SEEDS="1 2 3" scripts/bench_distill.sh "${core[@]}" >"$o/tableH.md" 2>>"$log"
}

# twostage_teachers NAME: stage H's teachers with seeds 2 and 3 (the
# teacher row's spread; the students distil from seed 1's), scored on test.
twostage_teachers() {
  local o="$runs/gid-$1-frcnn" s ts
  for s in 2 3; do
    ts="$o/teacher-s$s"
    teacher faster-rcnn-teacher "$s" "$ts"
    [ -s "$ts.test.json" ] || { "$GIDEDGE" eval --checkpoint "$ts/best.safetensors" --data "$DATA" \
      --split "${TEST_SPLIT:-test}" --json >"$ts.test.json.tmp" && mv "$ts.test.json.tmp" "$ts.test.json"; }
  done
}

# latency: stage L on the synthetic set. The one-stage students are
# trained alone on the two-stage students' schedule; the two-stage one is
# H's seed-1 baseline.
latency() {
  local o="$runs/gid-synth-latency" frcnn="$runs/gid-synth-frcnn/baseline-s1/best.safetensors" m
  mkdir -p "$o"
  [ -f "$frcnn" ] || return 0
  local -A ckpt=([faster-rcnn-student]="$frcnn" [retinanet-student]="$o/retinanet-student/best.safetensors"
    [fcos-student]="$o/fcos-student/best.safetensors")
  for m in retinanet-student fcos-student; do
    [ -f "${ckpt[$m]}" ] || "$GIDEDGE" train --model "$m" --data "$DATA" --epochs "$frcnn_epochs" --batch 8 \
      --img-size "$size" --seed 1 --eval-every 5 --out "$o/$m" --quiet >"$o/$m.log"
  done
  for m in faster-rcnn-student retinanet-student fcos-student; do
    [ -s "$o/$m.onnx" ] || "$GIDEDGE" export --checkpoint "${ckpt[$m]}" --out "$o/$m.onnx" --threads 1 >"$o/$m.export.txt"
  done
  "$GIDEDGE" bench latency --model "$o/faster-rcnn-student.onnx" --compare "$o/retinanet-student.onnx" \
    --compare "$o/fcos-student.onnx" --data "$DATA" --split "${TEST_SPLIT:-test}" --threads 1 --n 300 --warmup 30 \
    >"$o/tableL.md" 2>>"$OUT/grid.log"
  { echo; echo "Command: scripts/bench_distill_grid.sh (stage L); load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"; } >>"$o/tableL.md"
}

# grid NAME: runs the stages for one data set; the caller sets OUT,
# DATA, the split and evaluation variables and LONG_EVAL (epochs between
# evaluations of the long runs).
grid() {
  local name="$1" t="$OUT/teacher/best.safetensors" log="$OUT/grid.log"
  if [ "$stages" = frcnn ]; then
    twostage "$name"
    [ "$name" != synth ] || latency
    twostage_teachers "$name"
    return
  fi
  SEEDS="1 2 3" scripts/bench_distill.sh "${core[@]}" >"$OUT/tableA.md" 2>>"$log"
  SEEDS="1" scripts/bench_distill.sh "${parts[@]}" >"$OUT/tableB.md" 2>>"$log"
  OUT="$runs/gid-$name-e$long" EPOCHS="$long" EVAL_EVERY="$LONG_EVAL" TEACHER="$t" SEEDS="1 2 3" \
    scripts/bench_distill.sh baseline gid >"$OUT/tableD1.md" 2>>"$log"
  OUT="$runs/gid-$name-e$long" EPOCHS="$long" EVAL_EVERY="$LONG_EVAL" TEACHER="$t" SEEDS="1" \
    scripts/bench_distill.sh baseline gid fine-grained >"$OUT/tableD1-fine-grained.md" 2>>"$log"
  OUT="$runs/gid-$name-self" STUDENT=retinanet-teacher TEACHER="$t" SEEDS="1" \
    scripts/bench_distill.sh baseline gid >"$OUT/tableD2.md" 2>>"$log"
  SEEDS="1 2" scripts/bench_distill.sh "${parts[@]}" >"$OUT/tableC.md" 2>>"$log"
  local s ts
  for s in 2 3; do
    ts="$OUT/teacher-s$s"
    teacher retinanet-teacher "$s" "$ts"
    [ -s "$ts.test.json" ] || { "$GIDEDGE" eval --checkpoint "$ts/best.safetensors" --data "$DATA" \
      --split "${TEST_SPLIT:-test}" --json >"$ts.test.json.tmp" && mv "$ts.test.json.tmp" "$ts.test.json"; }
  done
  SEEDS="1 2 3" scripts/bench_distill.sh "${parts[@]}" >"$OUT/tableC.md" 2>>"$log"
  SEEDS="1 2 3" scripts/bench_distill.sh baseline gid fine-grained gid-k5 gid-k30 gid-k50 gid-relw10 gid-k30-relw10 \
    >"$OUT/tableE1.md" 2>>"$log"
  OUT="$runs/gid-$name-self" STUDENT=retinanet-teacher TEACHER="$t" SEEDS="1 2 3" \
    scripts/bench_distill.sh baseline gid >"$OUT/tableE2.md" 2>>"$log"
  OUT="$runs/gid-$name-e$long" EPOCHS="$long" EVAL_EVERY="$LONG_EVAL" TEACHER="$t" SEEDS="1 2 3" \
    scripts/bench_distill.sh baseline gid fine-grained >"$OUT/tableE3.md" 2>>"$log"
  SEEDS="1" scripts/bench_distill.sh baseline gid fine-grained gid-gt-only gid-positive gid-semi gid-negative \
    >"$OUT/tableE4.md" 2>>"$log"
  OUT="$runs/gid-$name-mid" STUDENT=benchmarks/configs/retinanet-mid.json EPOCHS="$long" EVAL_EVERY="$LONG_EVAL" \
    TEACHER="$t" SEEDS="1 2 3" scripts/bench_distill.sh baseline gid >"$OUT/tableF1.md" 2>>"$log"
  OUT="$runs/gid-$name-self-e$long" STUDENT=retinanet-teacher EPOCHS="$long" EVAL_EVERY="$LONG_EVAL" \
    TEACHER="$t" SEEDS="1" scripts/bench_distill.sh gid >"$OUT/tableF2.md" 2>>"$log"
  # G: the FCOS pair, its teacher trained like the RetinaNet one.
  local ft="$runs/gid-$name-fcos/teacher"
  teacher fcos-teacher 1 "$ft"
  OUT="$runs/gid-$name-fcos" TEACHER_MODEL=fcos-teacher STUDENT=fcos-student TEACHER="$ft/best.safetensors" \
    SEEDS="1" scripts/bench_distill.sh baseline gid >"$OUT/tableG.md" 2>>"$log"
  twostage "$name"
  [ "$name" != synth ] || latency
  twostage_teachers "$name"
}

synth() {
  export OUT="$runs/gid-synth" EPOCHS="$epochs" EVAL_EVERY=4 SIZE="$size" IMAGES=400 TEACHER_EPOCHS="$long"
  mkdir -p "$OUT"
  if [ "$stages" = frcnn ]; then
    # The data bench_distill.sh would generate, without its teacher.
    [ -f "$OUT/data/synth.json" ] || "$GIDEDGE" data synth --out "$OUT/data" --images 400 --size "$size" --seed 1 \
      --val-frac 0.15 --test-frac 0.15 >>"$OUT/grid.log"
  else
    # The first call generates the data and trains the teacher (best on val).
    SEEDS="1" scripts/bench_distill.sh baseline >/dev/null 2>>"$OUT/grid.log"
  fi
  export DATA="$OUT/data" LONG_EVAL=4
  grid synth
}

bccd() {
  # BCCD: train on trainval, score on test, evaluated once after the last
  # epoch (EVAL_EVERY = epochs), so no checkpoint is picked on test.
  export OUT="$runs/gid-bccd" EPOCHS="$epochs" EVAL_EVERY="$epochs" SIZE="$size" DATA="$bccd"
  export TRAIN_SPLIT=trainval VAL_SPLIT=test TEST_SPLIT=test
  # The teacher and the long-schedule runs evaluate once too.
  export LONG_EVAL="$long"
  if [ "$stages" != frcnn ]; then
    teacher retinanet-teacher 1 "$OUT/teacher"
    export TEACHER="$OUT/teacher/best.safetensors"
  fi
  mkdir -p "$OUT"
  grid bccd
}

pids=()
for s in "${sets[@]}"; do
  case "$s" in
    synth | bccd) (GOMAXPROCS=1 "$s") & pids+=($!) ;;
    *) echo "bench_distill_grid: unknown data set $s (want synth or bccd)" >&2; exit 2 ;;
  esac
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
