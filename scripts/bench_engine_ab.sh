#!/usr/bin/env bash
# Compares the engine probe of two gidedge binaries, interleaved (A B A B …)
# in one sitting so load from other jobs hits both alike. Prints, per run,
# the median train step (wall), the CPU time per step (all cores), the
# inference forward and the host transfers per step, then the medians of
# the B/A ratios.
#
#   scripts/bench_engine_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [extra bench flags]
#
# Example (the engine seam, issue 13):
#   git worktree add /tmp/base 810e10a && (cd /tmp/base && go build -o /tmp/gidedge-before ./cmd/gidedge)
#   go build -o /tmp/gidedge-after ./cmd/gidedge
#   scripts/bench_engine_ab.sh /tmp/gidedge-before /tmp/gidedge-after 3
set -euo pipefail
a=${1:?old binary}
b=${2:?new binary}
rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
echo "date $(date -u +%FT%TZ)  load $(cut -d' ' -f1-3 /proc/loadavg)  cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "flags $(grep -o -m1 'avx512_vnni\|avx512f\|avx2' /proc/cpuinfo | sort -u | xargs)"
printf '%-6s %-4s %12s %12s %12s %10s\n' run bin step_ms cpu_ms_step forward_ms host_rw
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
	for side in A B; do
		bin=$a
		[ "$side" = B ] && bin=$b
		"$bin" bench engine --json "$@" >"$tmp/$side$r.json"
		python3 - "$tmp/$side$r.json" "$r" "$side" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["probe"]
rw = "%.1f/%.1f" % (p.get("to_host_per_step", float("nan")), p.get("from_host_per_step", float("nan")))
print("%-6s %-4s %12.1f %12.1f %12.1f %10s" % (sys.argv[2], sys.argv[3], p["train_step_ms"], p["cpu_ms_per_step"], p["forward_ms"], rw))
PY
	done
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
def get(side, r, k): return json.load(open(f"{d}/{side}{r}.json"))["probe"][k]
for k in ["train_step_ms", "cpu_ms_per_step", "forward_ms"]:
    ratios = [get("B", r, k) / get("A", r, k) for r in range(1, n + 1)]
    print(f"B/A {k}: median {statistics.median(ratios):.3f}  (per round {', '.join('%.3f' % x for x in ratios)})")
PY
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)"
