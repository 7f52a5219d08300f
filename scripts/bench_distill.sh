#!/usr/bin/env bash
# Measures General Instance Distillation against the plain student, the
# teacher and the KD baselines: trains a teacher (or takes one), then for
# every seed trains the student baseline with `gidedge train` and each
# method with `gidedge distill`, scores every best.safetensors on the test
# split with `gidedge eval`, and prints a Markdown table of test AP, AP50
# and AP75 (mean ± sample std over seeds) with the step time and the
# distillation overhead over a plain student step.
#
#   scripts/bench_distill.sh [METHOD...]      (default: baseline gid)
#
# Methods: baseline (gidedge train), gid (all three losses), gid-feat,
# gid-rel, gid-resp, gid-feat-rel, gid-feat-resp, gid-rel-resp (parts alone
# and in pairs), gid-kN (K = N, e.g. gid-k5, gid-k30), gid-relwW (relation
# weight W), gid-kN-relwW (both), gid-gt-only, gid-positive, gid-semi,
# gid-negative (GI types), gid-batch (relation per batch), fitnet,
# fine-grained, response-kd (KD baselines).
#
# Environment: OUT (runs/bench-distill), SEEDS ("1 2 3"), EPOCHS (15),
# BATCH (8), SIZE (160: synthetic image side and input size), IMAGES (400),
# TEACHER_MODEL (retinanet-teacher), TEACHER_EPOCHS (30), STUDENT
# (retinanet-student), TEACHER (an existing teacher checkpoint or ONNX
# model: skips teacher training), DATA (an existing dataset instead of a
# synthetic one) with TRAIN_SPLIT/VAL_SPLIT/TEST_SPLIT (train/val/test),
# EVAL_EVERY (5: epochs between validations; best.safetensors is the best
# one), EXTRA (more flags for every distill run), GIDEDGE (bin/gidedge).
# Runs already finished (summary.json present) are not redone, so an
# interrupted benchmark continues where it stopped. TABLE_ONLY=1 trains
# nothing and prints the table from the runs that exist; a row counts the
# seeds it found, so a partly finished grid still reports honestly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-runs/bench-distill}"
seeds="${SEEDS:-1 2 3}"
epochs="${EPOCHS:-15}"
batch="${BATCH:-8}"
size="${SIZE:-160}"
images="${IMAGES:-400}"
teacher_model="${TEACHER_MODEL:-retinanet-teacher}"
teacher_epochs="${TEACHER_EPOCHS:-30}"
student="${STUDENT:-retinanet-student}"
tr="${TRAIN_SPLIT:-train}"
va="${VAL_SPLIT:-val}"
te="${TEST_SPLIT:-test}"
extra="${EXTRA:-}"
eval_every="${EVAL_EVERY:-5}"
gidedge="${GIDEDGE:-bin/gidedge}"
methods=("$@")
if [ ${#methods[@]} -eq 0 ]; then
  methods=(baseline gid)
fi

# flags METHOD: the gidedge distill flags of a method.
flags() {
  case "$1" in
    gid) echo "" ;;
    gid-feat) echo "--relation=false --response=false" ;;
    gid-rel) echo "--feature=false --response=false" ;;
    gid-resp) echo "--feature=false --relation=false" ;;
    gid-feat-rel) echo "--response=false" ;;
    gid-feat-resp) echo "--relation=false" ;;
    gid-rel-resp) echo "--feature=false" ;;
    gid-k[0-9]*-relw[0-9]*) k="${1#gid-k}"; echo "--topk ${k%%-*} --rel-weight ${1##*-relw}" ;;
    gid-k[0-9]*) echo "--topk ${1#gid-k}" ;;
    gid-relw[0-9]*) echo "--rel-weight ${1#gid-relw}" ;;
    gid-gt-only) echo "--gi-mode gt-only" ;;
    gid-positive) echo "--gi-mode positive" ;;
    gid-semi) echo "--gi-mode semi" ;;
    gid-negative) echo "--gi-mode negative" ;;
    gid-batch) echo "--relation-scope batch" ;;
    fitnet | fine-grained | response-kd) echo "--method $1" ;;
    *) echo "bench_distill: unknown method $1" >&2; exit 2 ;;
  esac
}

# score RUN: evaluates RUN's best (else last) checkpoint on the test split.
score() {
  local run="$1" ckpt="$1/best.safetensors"
  [ -f "$ckpt" ] || ckpt="$1/last.safetensors"
  # Written under a temporary name, so an interrupted evaluation leaves no
  # empty result behind that a rerun would take as done.
  [ -s "$run.test.json" ] || { "$gidedge" eval --checkpoint "$ckpt" --data "$data" --split "$te" --json >"$run.test.json.tmp" && mv "$run.test.json.tmp" "$run.test.json"; }
}

if [ ! -x "$gidedge" ]; then
  echo "bench_distill: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi
mkdir -p "$out"
cmdline="OUT=$out SEEDS=\"$seeds\" EPOCHS=$epochs EVAL_EVERY=$eval_every BATCH=$batch SIZE=$size IMAGES=$images TEACHER_MODEL=$teacher_model TEACHER_EPOCHS=$teacher_epochs STUDENT=$student ${TEACHER:+TEACHER=$TEACHER }${DATA:+DATA=$DATA }${extra:+EXTRA=\"$extra\" }scripts/bench_distill.sh ${methods[*]}"

data="${DATA:-$out/data}"
if [ -z "${DATA:-}" ] && [ ! -f "$data/synth.json" ]; then
  "$gidedge" data synth --out "$data" --images "$images" --size "$size" --seed 1 --val-frac 0.15 --test-frac 0.15
fi

teacher="${TEACHER:-}"
if [ -z "$teacher" ]; then
  if [ ! -f "$out/teacher/summary.json" ]; then
    echo "== teacher $teacher_model" >&2
    "$gidedge" train --model "$teacher_model" --data "$data" --train-split "$tr" --val-split "$va" \
      --epochs "$teacher_epochs" --batch "$batch" --img-size "$size" --seed 1 --eval-every "$eval_every" \
      --out "$out/teacher" --quiet >"$out/teacher.log"
  fi
  teacher="$out/teacher/best.safetensors"
  score "$out/teacher"
elif [[ "$teacher" == *.safetensors ]] && [ ! -s "$out/teacher.test.json" ]; then
  "$gidedge" eval --checkpoint "$teacher" --data "$data" --split "$te" --json >"$out/teacher.test.json.tmp"
  mv "$out/teacher.test.json.tmp" "$out/teacher.test.json"
fi

for seed in $seeds; do
  [ -z "${TABLE_ONLY:-}" ] || break
  for m in "${methods[@]}"; do
    run="$out/$m-s$seed"
    if [ ! -f "$run/summary.json" ]; then
      echo "== $m seed $seed" >&2
      common=(--data "$data" --train-split "$tr" --val-split "$va" --epochs "$epochs" --batch "$batch"
        --img-size "$size" --seed "$seed" --eval-every "$eval_every" --out "$run" --quiet)
      if [ "$m" = baseline ]; then
        "$gidedge" train --model "$student" "${common[@]}" >"$run.log"
      else
        # shellcheck disable=SC2046
        "$gidedge" distill --teacher "$teacher" --student "$student" "${common[@]}" $(flags "$m") $extra >"$run.log"
      fi
    fi
    score "$run"
  done
done

# Table: one row per method, mean ± std over seeds (awk), the share of the
# teacher's lead over the baseline that the method recovers (n/a where the
# teacher is less than half a point of AP ahead), step time and
# the step overhead relative to the baseline's mean step time.
{
  echo "### $student distilled from $teacher_model ($(basename "$data"), ${size}px, $epochs epochs, seeds: $seeds)"
  echo
  echo "| method | test AP | AP50 | AP75 | of teacher's lead | step ms | step vs baseline |"
  echo "|---|---|---|---|---|---|---|"
  if [ -f "$out/teacher.test.json" ]; then
    jq -r --arg t "$teacher" '"| teacher (\($t), 1 run) | \(.AP*10000|round/10000) | \(.AP50*10000|round/10000) | \(.AP75*10000|round/10000) | | | |"' "$out/teacher.test.json"
  fi
  base_ap=$(for s in $seeds; do
    [ ! -f "$out/baseline-s$s.test.json" ] || jq .AP "$out/baseline-s$s.test.json"
  done | awk '{t+=$1} END {if (NR) print t/NR}')
  teacher_ap=$([ ! -f "$out/teacher.test.json" ] || jq .AP "$out/teacher.test.json")
  base_ms=$(for s in $seeds; do
    [ ! -f "$out/baseline-s$s/summary.json" ] || jq .step_ms "$out/baseline-s$s/summary.json"
  done | awk '{t+=$1} END {if (NR) print t/NR}')
  for m in "${methods[@]}"; do
    for s in $seeds; do
      [ -s "$out/$m-s$s.test.json" ] || continue
      jq -r --slurpfile sum "$out/$m-s$s/summary.json" '"\(.AP) \(.AP50) \(.AP75) \($sum[0].step_ms)"' "$out/$m-s$s.test.json"
    done | awk -v m="$m" -v base="$base_ms" -v bap="$base_ap" -v tap="$teacher_ap" '
      { for (i = 1; i <= 4; i++) { s[i] += $i; q[i] += $i * $i } n++ }
      END {
        if (n == 0) exit
        printf "| %s (%d seed%s) |", m, n, (n > 1) ? "s" : ""
        for (i = 1; i <= 3; i++) {
          mean = s[i] / n; v = (n > 1) ? (q[i] - n * mean * mean) / (n - 1) : 0
          if (n > 1) printf " %.4f ± %.4f |", mean, sqrt(v > 0 ? v : 0); else printf " %.4f |", mean
        }
        # A share of a lead under half a point of AP is noise, and of a
        # negative one meaningless: the column then says so.
        if (bap != "" && tap != "" && tap - bap >= 0.005) { g = 100 * (s[1] / n - bap) / (tap - bap); printf " %.0f %% |", (g > -0.5 && g < 0.5) ? 0 : g }
        else if (bap != "" && tap != "") printf " n/a (teacher %+.4f over baseline) |", tap - bap; else printf " |"
        ms = s[4] / n
        if (base != "") printf " %.0f | %.2f× |\n", ms, ms / base; else printf " %.0f | |\n", ms
      }'
  done
  echo
  # The recipe the runs really used, read back from their hparams.json.
  for h in "$out"/*-s*/hparams.json; do
    [ -f "$h" ] || continue
    jq -r '"Recipe (from \(input_filename)): \(.optimizer), lr \(.lr), weight decay \(.weight_decay), \(.schedule) schedule, batch \(.batch), \(.img_size) px, eval every \(.eval_every) epochs, \(.train_images) training images."' "$h"
    break
  done
  echo "Command: $cmdline"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d); step ms is the mean wall time of a training step (shared machine: compare within one table)."
} | tee "$out/RESULTS.md"
