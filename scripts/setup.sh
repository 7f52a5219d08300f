#!/usr/bin/env bash
# Installs what gidedge needs on a fresh Debian 12 / Ubuntu machine. Idempotent:
# every step checks first and does nothing when its result is already there.
#
#   scripts/setup.sh            system packages + ONNX Runtime
#   scripts/setup.sh --ort-only only the ONNX Runtime library
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ort_version="1.30.0"
ort_dir="$root/third_party/onnxruntime-$ort_version"

say() { printf 'setup: %s\n' "$*"; }

# clang-16 compiles the CUDA kernels to PTX with no CUDA SDK (make ptx, and
# the test that checks the committed PTX); g++ (build-essential) builds the
# kernel emulation and the CUDA driver simulator the tests run on.
need_pkgs=(build-essential pkg-config libopenblas-dev libopencv-dev chromium clang-16)
install_packages() {
  local missing=()
  for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages present"
    return
  fi
  say "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ONNX Runtime ships inside the npm package onnxruntime-node; we take only the
# shared libraries (x64 and arm64) out of it into a git-ignored folder.
install_ort() {
  if [ -f "$ort_dir/linux-x64/libonnxruntime.so.1" ] && [ -f "$ort_dir/linux-arm64/libonnxruntime.so.1" ]; then
    say "onnxruntime $ort_version present in ${ort_dir#$root/}"
    return
  fi
  command -v npm >/dev/null || {
    say "npm is needed to fetch onnxruntime-node@$ort_version; installing"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm
  }
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  say "fetching onnxruntime-node@$ort_version with npm pack"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-"$ort_version".tgz -C "$tmp" \
    package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
    package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
  mkdir -p "$ort_dir.partial/linux-x64" "$ort_dir.partial/linux-arm64"
  cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort_dir.partial/linux-x64/"
  cp "$tmp/package/bin/napi-v6/linux/arm64/libonnxruntime.so.1" "$ort_dir.partial/linux-arm64/"
  rm -rf "$ort_dir"
  mv "$ort_dir.partial" "$ort_dir"
  say "onnxruntime $ort_version installed in ${ort_dir#$root/}"
}

case "${1:-}" in
  --ort-only) install_ort ;;
  *) install_packages; install_ort ;;
esac
