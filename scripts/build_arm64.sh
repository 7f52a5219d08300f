#!/usr/bin/env bash
# Cross-builds gidedge for linux/arm64 with cgo on an x86-64 Debian 12 host:
# Debian's aarch64-linux-gnu cross compilers, and the arm64 OpenCV and
# OpenBLAS that scripts/setup.sh --arm64 unpacks into third_party/sysroot-arm64.
# gocv's customenv tag turns off its pkg-config line, so the flags below name
# the sysroot's headers and the OpenCV modules gocv's shims call.
#
#   scripts/build_arm64.sh [OUT]   (default bin/linux-arm64/gidedge)
#
# Run the result on x86-64 with qemu-user, no binfmt registration needed:
#   qemu-aarch64-static -L third_party/sysroot-arm64 bin/linux-arm64/gidedge doctor
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bin/linux-arm64/gidedge}"
sysroot="$root/third_party/sysroot-arm64"
multiarch="$sysroot/usr/lib/aarch64-linux-gnu"

fail() { printf 'build_arm64: %s\n' "$*" >&2; exit 1; }
[ -f "$sysroot/.gidedge-sysroot" ] || fail "no arm64 sysroot in ${sysroot#$root/}; run scripts/setup.sh --arm64"
command -v aarch64-linux-gnu-g++ >/dev/null || fail "aarch64-linux-gnu-g++ not found; run scripts/setup.sh --arm64 (crossbuild-essential-arm64)"

# The modules gocv v0.31's main package links; keep in step with
# arm64_opencv_linked in scripts/setup.sh.
modules=(core imgproc imgcodecs videoio highgui dnn objdetect features2d calib3d photo video flann)
ldflags=(-L"$multiarch" -L"$multiarch/openblas-pthread")
for m in "${modules[@]}"; do ldflags+=("-lopencv_$m"); done
# The libraries above need theirs (Qt, GDAL, FFmpeg, ...); the linker finds
# them in the sysroot, and nothing of the sysroot's path is written into the
# binary: on a device they come from its own /usr/lib.
ldflags+=(-Wl,-rpath-link,"$multiarch" -Wl,-rpath-link,"$multiarch/openblas-pthread" -Wl,-rpath-link,"$sysroot/usr/lib")

mkdir -p "$(dirname "$out")"
cd "$root"
GOOS=linux GOARCH=arm64 CGO_ENABLED=1 \
  CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
  CGO_CPPFLAGS="-I$sysroot/usr/include/opencv4 -I$sysroot/usr/include/aarch64-linux-gnu/openblas-pthread" \
  CGO_CXXFLAGS="--std=c++11" \
  CGO_LDFLAGS="${ldflags[*]}" \
  go build -tags customenv -o "$out" ./cmd/gidedge
printf 'build_arm64: %s\n' "${out#$root/}"
