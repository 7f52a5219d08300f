#!/usr/bin/env bash
# What a request costs beyond the model, before and after a change: builds
# `gidedge` from a git revision (BEFORE) and from the working
# tree, then measures both with `gidedge bench latency` on one 640x480 COCO
# JPEG, in-process and through `gidedge serve` on loopback, alternating the
# two builds round by round (A B B A ...) so both see the same background
# load. Prints per round and overall medians: the in-process p50, the ONNX
# Runtime session p50, their ratio, the server overhead p50, the server's CPU
# time (user+sys) per request it answered (decode to JSON, model included),
# and the bench client's CPU time per image it detected in-process (plus its
# HTTP client and one model load, spread over the run).
#
#   scripts/bench_overhead.sh [BEFORE]     (default: where this branch left main)
#
# Environment: ROUNDS (4), N (200 timed requests per build and round),
# WARMUP (30), THREADS (1: steadier on a shared CPU), IMAGE (coco128's
# 000000000009.jpg, 640x480), MODEL (NanoDet-m 320), OUT (runs/bench_overhead).
# Needs python3 for the summary. The servers only listen on 127.0.0.1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
before="${1:-$(git merge-base HEAD main)}"
rounds="${ROUNDS:-4}"
n="${N:-200}"
warmup="${WARMUP:-30}"
threads="${THREADS:-1}"
image="${IMAGE:-../shared/data/coco128/images/000000000009.jpg}"
model="${MODEL:-../shared/models/nanodet_m_320.onnx}"
out="${OUT:-runs/bench_overhead}"
port=18090

mkdir -p "$out/images"
cp "$image" "$out/images/"

echo "bench_overhead: building the working tree and $before" >&2
go build -o "$out/gidedge-after" ./cmd/gidedge
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git archive "$before" | tar -x -C "$src"
(cd "$src" && go build -o "$root/$out/gidedge-before" ./cmd/gidedge)

# cpu_seconds PID: user+sys CPU seconds of a running process.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# measure NAME ROUND: one interleaved in-process / end-to-end measurement.
measure() {
  local name="$1" r="$2" bin="$out/gidedge-$1"
  "$bin" serve --model "$model" --addr "127.0.0.1:$port" --threads "$threads" --log-level warn \
    >"$out/serve-$name-$r.log" 2>&1 &
  local server=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local s0 c0 c1 s1
  s0="$(cpu_seconds "$server")"
  c0="$(date +%s.%N)"
  /usr/bin/time -f "%U %S" -o "$out/client-$name-$r.time" \
    "$bin" bench latency --model "$model" --url "http://127.0.0.1:$port" \
      --images "$out/images" --n "$n" --warmup "$warmup" --threads "$threads" --rounds 10 --json \
      >"$out/$name-$r.json" 2>"$out/bench-$name-$r.log"
  c1="$(date +%s.%N)"
  s1="$(cpu_seconds "$server")"
  kill -TERM "$server"
  wait "$server" || true
  echo "$name $r server_cpu=$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b-a}') wall=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}') load=$(cut -d' ' -f1 /proc/loadavg)" >>"$out/cpu.txt"
}

: >"$out/cpu.txt"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "flags: $(grep -o -m1 'avx512_vnni\|avx512f\|avx2' /proc/cpuinfo | sort -u | xargs)"
  echo "before: $before ($(git rev-parse --short "$before")), after: working tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'))"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/summary.txt"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for name in $order; do
    echo "round $r: $name" >&2
    measure "$name" "$r"
  done
done

python3 - "$out" "$rounds" "$n" "$warmup" <<'EOF' | tee -a "$out/summary.txt"
import json, statistics, sys
out, rounds, n, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = {}
for line in open(f"{out}/cpu.txt"):
    name, r, *kv = line.split()
    cpu[(name, int(r))] = dict(x.split("=") for x in kv)
images = n + warmup  # per mode, warm-up included
rows = {"before": [], "after": []}
print(f"{'build':7} {'round':>5} {'inproc p50':>10} {'session p50':>11} {'ratio':>6} {'e2e p50':>8} {'overhead p50':>12} {'server CPU/req':>14} {'bench CPU/img':>13} {'load':>5}")
for r in range(1, rounds + 1):
    for name in ("before", "after"):
        rep = json.load(open(f"{out}/{name}-{r}.json"))
        res = {x["mode"]: x for x in rep["results"]}
        ip, e2e = res["in-process"], res["end-to-end"]
        over = e2e.get("overhead_p50_ms", 0.0)
        u, s = map(float, open(f"{out}/client-{name}-{r}.time").read().split()[-2:])
        srv = float(cpu[(name, r)]["server_cpu"]) / (n + warmup) * 1000
        cli = (u + s) / images * 1000
        row = dict(ip=ip["p50_ms"], sess=ip["session_p50_ms"], e2e=e2e["p50_ms"], over=over, srv=srv, cli=cli)
        row["ratio"] = row["ip"] / row["sess"]
        rows[name].append(row)
        print(f"{name:7} {r:5d} {row['ip']:10.2f} {row['sess']:11.2f} {row['ratio']:6.2f} {row['e2e']:8.2f} {row['over']:12.3f} {row['srv']:14.2f} {row['cli']:13.2f} {cpu[(name, r)]['load']:>5}")
print("medians over rounds (ms; CPU in ms per request):")
for name in ("before", "after"):
    med = {k: statistics.median(x[k] for x in rows[name]) for k in rows[name][0]}
    print(f"  {name:6}: in-process p50 {med['ip']:.2f}, session p50 {med['sess']:.2f}, ratio {med['ratio']:.2f}, "
          f"end-to-end p50 {med['e2e']:.2f}, server overhead p50 {med['over']:.3f}, server CPU/request {med['srv']:.2f}, bench CPU/image {med['cli']:.2f}")
EOF
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/summary.txt"
