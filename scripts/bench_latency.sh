#!/usr/bin/env bash
# Measures a detector in-process and through `gidedge serve` on loopback, so
# the table shows the server's overhead at p50 for each concurrency.
#
#   scripts/bench_latency.sh [MODEL] [extra `gidedge bench latency` flags]
#
# Environment: N (default 200), WARMUP (20), CONCURRENCY (1,4), SESSIONS (1),
# THREADS (0 = ONNX Runtime's default; 1 is steadier on a busy machine),
# IMAGES (../shared/data/coco128/images), PORT (18080), GIDEDGE (bin/gidedge).
# The server only ever listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
model="${1:-../shared/models/nanodet_m_320.onnx}"
shift || true
n="${N:-200}"
warmup="${WARMUP:-20}"
concurrency="${CONCURRENCY:-1,4}"
sessions="${SESSIONS:-1}"
threads="${THREADS:-0}"
images="${IMAGES:-../shared/data/coco128/images}"
port="${PORT:-18080}"
gidedge="${GIDEDGE:-bin/gidedge}"

if [ ! -x "$gidedge" ]; then
  echo "bench_latency: building $gidedge" >&2
  go build -o "$gidedge" ./cmd/gidedge
fi

log="$(mktemp)"
"$gidedge" serve --model "$model" --addr "127.0.0.1:$port" --sessions "$sessions" --threads "$threads" --log-level warn >"$log" 2>&1 &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "bench_latency: server exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

"$gidedge" bench latency --model "$model" --url "http://127.0.0.1:$port" \
  --images "$images" --n "$n" --warmup "$warmup" --concurrency "$concurrency" \
  --sessions "$sessions" --threads "$threads" "$@"
