#!/usr/bin/env bash
# How much slower is the reference backend than the CPU backend? Times, on
# each device, the probe network's training step (forward + backward,
# engine BenchmarkProbeTrainStep, input 8×3×128×128) and one
# retinanet-student training step at 160 px, batch 8 (forward, detection
# loss, backward; distill BenchmarkStep/student), and prints wall time, CPU
# time (all cores) and host transfers per step. The reference backend runs
# on one goroutine; the CPU backend on GOMAXPROCS workers.
#
#   scripts/bench_devices.sh [CPU_STEPS] [REF_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
cpu_steps=${1:-5}
ref_steps=${2:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/engine.test" ./engine
go test -c -o "$tmp/distill.test" ./distill
echo "date $(date -u +%FT%TZ)  load $(cut -d' ' -f1-3 /proc/loadavg)  cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  cores $(nproc)"
for dev in cpu ref; do
	steps=$cpu_steps
	[ "$dev" = ref ] && steps=$ref_steps
	(cd engine && GIDEDGE_DEVICE=$dev "$tmp/engine.test" -test.run '^$' -test.bench 'ProbeTrainStep$' -test.benchtime "${steps}x") | grep Benchmark | sed "s/^/$dev /"
	(cd distill && GIDEDGE_DEVICE=$dev "$tmp/distill.test" -test.run '^$' -test.bench 'Step/student$' -test.benchtime "${steps}x") | grep Benchmark | sed "s/^/$dev /"
done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)"
