#!/usr/bin/env bash
# The engine against PyTorch on the same architectures, in one sitting:
# `gidedge bench engine --model retinanet-student|retinanet-teacher` and
# benchmarks/detector_pytorch.py (the same networks layer for layer, same
# parameter count, same loss, clip and AdamW), plus the probe network
# (`gidedge bench engine` against benchmarks/probe_pytorch.py). Rounds
# alternate the two sides (gidedge first in odd rounds, PyTorch first in
# even ones) so both see the same background load. Prints, per model, the
# median train-step wall time and CPU time per step of each side, their
# ratios (gidedge / PyTorch: ≤ 1.0 means gidedge is as fast or faster) and
# the student/teacher step ratio on both sides; the per-round JSON is kept
# under OUT. PyTorch runs twice per round: with OpenMP's default wait
# policy (threads spin between parallel regions: the fastest wall time on
# an otherwise idle machine, at the cost of CPU time) and with
# OMP_WAIT_POLICY=PASSIVE (threads sleep: less CPU, slower small ops).
# The wall-time ratio is taken against the faster of the two, the CPU-time
# ratio against the one using less CPU. Record the table in benchmarks/RESULTS.md with the CPU flags
# it prints.
#
#   scripts/bench_vs_pytorch.sh
#
# Environment: ROUNDS (3), STEPS (20 timed steps per run), SIZE (160),
# BATCH (8), THREADS (2: PyTorch's threads; gidedge uses every core),
# OUT (runs/bench_vs_pytorch), GIDEDGE (bin/gidedge, built if missing),
# PYTHON (/usr/bin/python3, with Debian's python3-torch 1.13).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${ROUNDS:-3}"
steps="${STEPS:-20}"
size="${SIZE:-160}"
batch="${BATCH:-8}"
threads="${THREADS:-2}"
out="${OUT:-runs/bench_vs_pytorch}"
gidedge="${GIDEDGE:-bin/gidedge}"
python="${PYTHON:-/usr/bin/python3}"

"$python" -c 'import torch' 2>/dev/null || {
  echo "bench_vs_pytorch: $python cannot import torch; install Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 1
}
[ -x "$gidedge" ] || make build
mkdir -p "$out"

run_gidedge() { # model round
  if [ "$1" = probe ]; then
    "$gidedge" bench engine --json --steps "$steps" >"$out/gidedge-$1-r$2.json"
  else
    "$gidedge" bench engine --json --model "$1" --size "$size" --batch "$batch" --steps "$steps" \
      --profile-steps "$([ "$2" = 1 ] && echo 3 || echo 0)" >"$out/gidedge-$1-r$2.json"
  fi
}
run_torch1() { # model round policy
  if [ "$1" = probe ]; then
    env $3 "$python" benchmarks/probe_pytorch.py --threads "$threads" --steps "$steps" >"$out/torch$4-$1-r$2.json"
  else
    env $3 "$python" benchmarks/detector_pytorch.py --model "$1" --size "$size" --batch "$batch" \
      --steps "$steps" --threads "$threads" --json >"$out/torch$4-$1-r$2.json"
  fi
}
run_torch() { # model round
  run_torch1 "$1" "$2" OMP_WAIT_POLICY=ACTIVE ""
  run_torch1 "$1" "$2" OMP_WAIT_POLICY=PASSIVE "-passive"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for m in retinanet-student retinanet-teacher probe; do
    echo "== round $r: $m" >&2
    if [ $((r % 2)) = 1 ]; then run_gidedge "$m" "$r"; run_torch "$m" "$r"; else run_torch "$m" "$r"; run_gidedge "$m" "$r"; fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

OUT="$out" ROUNDS="$rounds" "$python" - <<'EOF'
import json, os, statistics
out, rounds = os.environ["OUT"], int(os.environ["ROUNDS"])
def load(side, m, key):
    vals = []
    for r in range(1, rounds + 1):
        with open(f"{out}/{side}-{m}-r{r}.json") as f:
            d = json.load(f)
        d = d.get("model", d) if side == "gidedge" and m != "probe" else d
        if side == "gidedge" and m == "probe":
            d = d.get("probe", d)
        vals.append(d[key])
    return statistics.median(vals)
print("| model | gidedge step ms | PyTorch step ms (spin / passive) | ratio (wall) | gidedge CPU ms/step | PyTorch CPU ms/step (spin / passive) | ratio (CPU) | params gidedge / PyTorch |")
print("|---|---|---|---|---|---|---|---|")
steps = {}
for m in ("retinanet-student", "retinanet-teacher", "probe"):
    g, gc = load("gidedge", m, "train_step_ms"), load("gidedge", m, "cpu_ms_per_step")
    ta, tp = load("torch", m, "train_step_ms"), load("torch-passive", m, "train_step_ms")
    tca, tcp = load("torch", m, "cpu_ms_per_step"), load("torch-passive", m, "cpu_ms_per_step")
    t, tc = min(ta, tp), min(tca, tcp)
    params = "—"
    if m != "probe":
        params = f"{load('gidedge', m, 'params')} / {load('torch', m, 'params')}"
    steps[m] = (g, t)
    print(f"| {m} | {g:.1f} | {ta:.1f} / {tp:.1f} | {g/t:.2f} | {gc:.1f} | {tca:.1f} / {tcp:.1f} | {gc/tc:.2f} | {params} |")
(gs, ts), (gt, tt) = steps["retinanet-student"], steps["retinanet-teacher"]
print(f"\nstudent/teacher step ratio: gidedge {gs/gt:.2f}, PyTorch {ts/tt:.2f} (faster policy; medians of {rounds} rounds)")
EOF
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); AVX-512: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no), VNNI: $(grep -q avx512_vnni /proc/cpuinfo && echo yes || echo no); $(date -u +%Y-%m-%d)."
echo "Command: ROUNDS=$rounds STEPS=$steps SIZE=$size BATCH=$batch THREADS=$threads scripts/bench_vs_pytorch.sh"
