#!/usr/bin/env bash
# Measures the demo's own configuration over several seeds: the figures
# that docs/demo.md, the README and the demo's report quote next to the one
# seed a demo runs.
#
#   1. `gidedge demo --out OUT/demo` (timed): data, configs, the seed-1
#      teacher and both seed-1 students, exactly as `make demo` makes them;
#   2. scripts/bench_distill.sh trains the baseline and the GID student
#      again with every other seed on the same data, configs and schedule,
#      distilling from the same seed-1 teacher (the demo's own seed-1 runs
#      are reused, not retrained), and scores them on the test split;
#   3. teachers with the other seeds give the teacher's spread.
#
# Prints a Markdown summary (mean ± sample std over seeds, and GID minus
# baseline per seed) and writes it to OUT/RESULTS.md; the per-method table
# of bench_distill.sh is in OUT/students/RESULTS.md.
#
#   scripts/bench_demo.sh
#
# Environment: OUT (runs/bench-demo), SEEDS ("1 2 3": student seeds),
# TEACHER_SEEDS ("2 3": more teachers; "" for none), GIDEDGE (bin/gidedge),
# QUICK=1 (the --quick plan: checks this script in minutes, figures meaningless).
# Needs jq. Finished runs are skipped, so an interrupted run continues.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-runs/bench-demo}"
seeds="${SEEDS:-1 2 3}"
teacher_seeds="${TEACHER_SEEDS-2 3}"
export GIDEDGE="${GIDEDGE:-bin/gidedge}"
if [ ! -x "$GIDEDGE" ]; then
  echo "bench_demo: building $GIDEDGE" >&2
  go build -o "$GIDEDGE" ./cmd/gidedge
fi
mkdir -p "$out"
demo="$out/demo"

# 1. The demo itself, timed when it really runs (a finished one is reused).
if [ ! -f "$demo/results.json" ]; then
  echo "== gidedge demo --out $demo" >&2
  {
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    TIMEFORMAT='demo: %R s wall, %U s user, %S s sys'
    time "$GIDEDGE" demo --out "$demo" --quiet ${QUICK:+--quick} >"$out/demo.log"
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  } 2>"$out/demo.time"
fi
teacher_cfg="$demo/configs/teacher.json"
student_cfg="$demo/configs/student.json"
epochs=$(jq .train.epochs "$student_cfg")
batch=$(jq .train.batch "$student_cfg")
size=$(jq .input.size "$student_cfg")
images=$(jq .synth.images "$demo/results.json")

# 2. Students: the demo's seed-1 runs stand for seed 1.
students="$out/students"
mkdir -p "$students"
for m in baseline gid; do
  [ -e "$students/$m-s1" ] || ln -s "../demo/$m" "$students/$m-s1"
done
OUT="$students" SEEDS="$seeds" EPOCHS="$epochs" EVAL_EVERY=1 BATCH="$batch" SIZE="$size" IMAGES="$images" \
  TEACHER_MODEL="$teacher_cfg" STUDENT="$student_cfg" TEACHER="$demo/teacher/best.safetensors" DATA="$demo/synth" \
  GIDEDGE="$GIDEDGE" scripts/bench_distill.sh baseline gid >/dev/null

# 3. More teachers, trained exactly as the demo trains its own.
for s in $teacher_seeds; do
  t="$out/teachers/teacher-s$s"
  mkdir -p "$(dirname "$t")"
  if [ ! -f "$t/summary.json" ]; then
    echo "== teacher seed $s" >&2
    "$GIDEDGE" train --model "$teacher_cfg" --data "$demo/synth" --seed "$s" --eval-every 1 --out "$t" --quiet >"$t.log"
  fi
  [ -s "$t.test.json" ] || { "$GIDEDGE" eval --checkpoint "$t/best.safetensors" --data "$demo/synth" --split test --json >"$t.test.json.tmp" &&
    mv "$t.test.json.tmp" "$t.test.json"; }
done

# stats: "mean ± std (n)" of the numbers on stdin, one a line.
stats() {
  awk '{ s += $1; q += $1 * $1; n++ } END {
    if (n == 0) { print "n/a"; exit }
    m = s / n; v = (n > 1) ? (q - n * m * m) / (n - 1) : 0
    printf "%.4f ± %.4f (%d seed%s)", m, sqrt(v > 0 ? v : 0), n, (n > 1) ? "s" : "" }'
}
ap() { jq .AP "$1"; }
# gain SEED: the GID student's test mAP minus the baseline's, one seed.
gain() { jq -n --slurpfile g "$students/gid-s$1.test.json" --slurpfile b "$students/baseline-s$1.test.json" '$g[0].AP - $b[0].AP'; }
{
  echo "### The demo's configuration over seeds ($(jq -r .plan.name "$demo/results.json") plan, $(jq -r .synth.preset "$demo/results.json") preset, ${size} px)"
  echo
  echo "| model | test mAP per seed | mean ± std |"
  echo "|---|---|---|"
  tfiles=("$students/teacher.test.json")
  for s in $teacher_seeds; do tfiles+=("$out/teachers/teacher-s$s.test.json"); done
  echo "| teacher (seeds 1 $teacher_seeds) | $(for f in "${tfiles[@]}"; do printf '%.4f ' "$(ap "$f")"; done)| $(for f in "${tfiles[@]}"; do ap "$f"; done | stats) |"
  for m in baseline gid; do
    echo "| $m student (seeds $seeds) | $(for s in $seeds; do printf '%.4f ' "$(ap "$students/$m-s$s.test.json")"; done)| $(for s in $seeds; do ap "$students/$m-s$s.test.json"; done | stats) |"
  done
  echo "| GID − baseline, same seed | $(for s in $seeds; do printf '%+.4f ' "$(gain "$s")"; done)| $(for s in $seeds; do gain "$s"; done | stats) |"
  echo
  echo "Every student distils from (or is compared with) the seed-1 teacher the demo trains; the seed-1 students are the demo's own runs."
  [ ! -f "$out/demo.time" ] || echo "The demo run: $(tr '\n' ';' <"$out/demo.time" | sed 's/;$//; s/;/; /g')."
  echo "Command: OUT=$out SEEDS=\"$seeds\" TEACHER_SEEDS=\"$teacher_seeds\" ${QUICK:+QUICK=1 }scripts/bench_demo.sh"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)."
} | tee "$out/RESULTS.md"
