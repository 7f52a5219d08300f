#!/usr/bin/env bash
# Installs what gidedge needs on a fresh Debian 12 / Ubuntu machine. Idempotent:
# every step checks first and does nothing when its result is already there.
#
#   scripts/setup.sh            system packages + ONNX Runtime
#   scripts/setup.sh --ort-only only the ONNX Runtime library
#   scripts/setup.sh --arm64    the arm64 cross toolchain, qemu-user and sysroot
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
. "$root/versions.env"
ort_version="$ORT_VERSION"
ort_dir="$root/third_party/onnxruntime-$ort_version"

say() { printf 'setup: %s\n' "$*"; }

# apt_install_missing LABEL PACKAGE...: installs those of the Debian packages
# that are not installed yet (as root or through sudo), or says they are there.
apt_install_missing() {
  local label="$1" missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "$label present"
    return
  fi
  say "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
}

# clang-16 compiles the CUDA kernels to PTX with no CUDA SDK (make ptx, and
# the test that checks the committed PTX); g++ (build-essential) builds the
# kernel emulation and the CUDA driver simulator the tests run on.
need_pkgs=(build-essential pkg-config libopenblas-dev libopencv-dev chromium clang-16)
install_packages() { apt_install_missing "system packages" "${need_pkgs[@]}"; }

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

# ---------------------------------------------------------------------- arm64
# The arm64 cross build (make build-arm64) and its checks under emulation need
# Debian's cross compilers and qemu-user on the host, and the arm64 libraries
# gidedge links (OpenCV, OpenBLAS and all they load at run time) in a sysroot.
# The sysroot is unpacked from the .debs with dpkg-deb -x into the git-ignored
# third_party/sysroot-arm64, never installed, so the host's own packages stay
# as they are (libopencv-dev cannot be installed for two architectures). apt
# runs against a private state folder, third_party/apt-arm64, for the same
# reason: the host's dpkg architectures and package lists are not touched.
arm64_sysroot="$root/third_party/sysroot-arm64"
arm64_apt="$root/third_party/apt-arm64"
arm64_mirror="${GIDEDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
arm64_security_mirror="${GIDEDGE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# The OpenCV modules whose functions gocv's C++ shims call (the binary links
# every one), and two more whose headers opencv2/opencv.hpp includes.
arm64_opencv_linked=(core imgproc imgcodecs videoio highgui dnn objdetect features2d calib3d photo video flann)
arm64_opencv_headers_only=(ml stitching)
# Packages of the dependency closure that hold only data files or plugins
# loaded with dlopen (Mesa's DRI drivers and the LLVM and Z3 they use): none
# is in the DT_NEEDED closure of gidedge and libonnxruntime (264 libraries,
# checked with readelf -d), and leaving them out saves about 180 of 555 MiB.
# The emulated checks start the binary, which fails at once if this list ever
# drops a library it needs.
arm64_skip=(libllvm15 libz3-4 libgl1-mesa-dri proj-data gdal-data iso-codes fonts-dejavu-core xkb-data shared-mime-info)

install_arm64_tools() {
  apt_install_missing "arm64 cross toolchain and qemu-user" crossbuild-essential-arm64 qemu-user-static debian-archive-keyring
}

# apt-get on the private arm64 state: an empty dpkg status, so a simulated
# install resolves the whole run-time closure as on a bare arm64 system.
arm64_apt_get() {
  apt-get -q \
    -o Dir::Etc::SourceList="$arm64_apt/sources.list" -o Dir::Etc::SourceParts="$arm64_apt/empty.d" \
    -o Dir::Etc::Preferences="$arm64_apt/preferences" -o Dir::Etc::PreferencesParts="$arm64_apt/empty.d" \
    -o Dir::State::Lists="$arm64_apt/lists" -o Dir::State::status="$arm64_apt/status" \
    -o Dir::Cache="$arm64_apt/cache" -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
    -o APT::Sandbox::User=root -o Acquire::Languages=none \
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
    "$@"
}

install_arm64_sysroot() {
  local major minor _ soversion
  IFS=. read -r major minor _ <<<"$OPENCV_DEBIAN_VERSION"
  soversion=$((major * 100 + minor)) # Debian names OpenCV 4.6 libraries libopencv-*406
  local stamp="suite=$DEBIAN_SUITE opencv=$OPENCV_DEBIAN_VERSION linked=${arm64_opencv_linked[*]} headers=${arm64_opencv_headers_only[*]} skip=${arm64_skip[*]}"
  if [ -f "$arm64_sysroot/.gidedge-sysroot" ] && [ "$(cat "$arm64_sysroot/.gidedge-sysroot")" = "$stamp" ]; then
    arm64_emulated_cpuinfo "$arm64_sysroot"
    say "arm64 sysroot present in ${arm64_sysroot#$root/}"
    return
  fi
  local started=$SECONDS
  rm -rf "$arm64_apt"
  mkdir -p "$arm64_apt"/{lists/partial,cache/archives/partial,empty.d,debs}
  : >"$arm64_apt/status"
  : >"$arm64_apt/preferences"
  local key=/usr/share/keyrings/debian-archive-keyring.gpg
  cat >"$arm64_apt/sources.list" <<SOURCES
deb [arch=arm64 signed-by=$key] $arm64_mirror $DEBIAN_SUITE main
deb [arch=arm64 signed-by=$key] $arm64_mirror $DEBIAN_SUITE-updates main
deb [arch=arm64 signed-by=$key] $arm64_security_mirror $DEBIAN_SUITE-security main
SOURCES
  say "resolving the arm64 sysroot ($DEBIAN_SUITE, OpenCV $OPENCV_DEBIAN_VERSION, OpenBLAS)"
  arm64_apt_get update -qq
  local runtime=(libopenblas0-pthread) headers=(libopenblas-pthread-dev) m
  for m in "${arm64_opencv_linked[@]}"; do
    runtime+=("libopencv-$m$soversion")
    headers+=("libopencv-$m-dev")
  done
  for m in "${arm64_opencv_headers_only[@]}"; do headers+=("libopencv-$m-dev"); done
  local closure=() pkg name wanted=()
  mapfile -t closure < <(arm64_apt_get -s install --no-install-recommends "${runtime[@]}" |
    awk '/^Inst /{ print $2 "=" substr($3, 2) }')
  if [ ${#closure[@]} -eq 0 ]; then
    say "apt resolved no arm64 packages for ${runtime[*]}" >&2
    return 1
  fi
  for pkg in "${closure[@]}"; do
    name="${pkg%%=*}"
    [[ " ${arm64_skip[*]} " == *" $name "* ]] || wanted+=("$pkg")
  done
  # The -dev packages give the headers and the unversioned .so links; their
  # own dependencies are other -dev packages the build does not read.
  say "downloading ${#wanted[@]} arm64 packages and ${#headers[@]} header packages"
  (cd "$arm64_apt/debs" && arm64_apt_get download -qq "${wanted[@]}" "${headers[@]}")
  local downloaded
  downloaded="$(du -sm "$arm64_apt/debs" | cut -f1)"
  local partial="$arm64_sysroot.partial" deb
  rm -rf "$partial"
  mkdir -p "$partial"
  for deb in "$arm64_apt"/debs/*.deb; do dpkg-deb -x "$deb" "$partial"; done
  arm64_fix_sysroot "$partial"
  arm64_emulated_cpuinfo "$partial"
  printf '%s\n' "$stamp" >"$partial/.gidedge-sysroot"
  rm -rf "$arm64_sysroot" "$arm64_apt/debs"
  mv "$partial" "$arm64_sysroot"
  say "arm64 sysroot: ${#wanted[@]}+${#headers[@]} packages, ${downloaded} MiB downloaded, $(du -sm "$arm64_sysroot" | cut -f1) MiB unpacked in ${arm64_sysroot#$root/} ($((SECONDS - started)) s)"
}

# arm64_fix_sysroot does what installing would have done and the build and
# qemu need: one /usr (Debian 12 merges /lib into /usr/lib), symlinks relative
# to the sysroot instead of the host's root, and the alternatives links that
# name OpenBLAS as the system BLAS/LAPACK. Documentation and static libraries
# are dropped.
arm64_fix_sysroot() {
  local dir="$1" link target multiarch=usr/lib/aarch64-linux-gnu
  rm -rf "$dir"/usr/share/{doc,man,info,locale,lintian}
  find "$dir" -name '*.a' -type f -delete
  for top in lib bin sbin; do
    if [ -d "$dir/$top" ] && [ ! -L "$dir/$top" ]; then
      mkdir -p "$dir/usr/$top"
      cp -a "$dir/$top/." "$dir/usr/$top/"
      rm -rf "${dir:?}/$top"
    fi
    ln -sfn "usr/$top" "$dir/$top"
  done
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    [[ "$target" == /* ]] || continue
    ln -sfn "$(realpath -s -m --relative-to="$(dirname "$link")" "$dir$target")" "$link"
  done < <(find "$dir" -type l -print0)
  local blas=openblas-pthread so
  for so in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    [ -e "$dir/$multiarch/$blas/$so" ] || { say "arm64 sysroot lacks $multiarch/$blas/$so" >&2; return 1; }
    ln -sfn "$blas/$so" "$dir/$multiarch/$so"
  done
}

# arm64_emulated_cpuinfo writes an arm64 /proc/cpuinfo (a Jetson Orin's
# Cortex-A78AE cores, one entry per host CPU) into the sysroot. qemu-user 7.2
# (Debian 12) hands an arm64 program the host's x86 /proc/cpuinfo, on which
# the cpuinfo library inside ONNX Runtime crashes while the library loads;
# qemu -L serves a file under the prefix in place of the host's, so this one
# is read instead. Only the emulated runs see it; a device has its own.
arm64_emulated_cpuinfo() {
  local file="$1/proc/cpuinfo" want i n
  n="$(getconf _NPROCESSORS_CONF)"
  want="$(for ((i = 0; i < n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 62.50\n' "$i"
    printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm paca pacg\n'
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n'
  done)"
  [ -f "$file" ] && [ "$(cat "$file")" = "$want" ] && return
  mkdir -p "$(dirname "$file")"
  printf '%s\n' "$want" >"$file"
}

case "${1:-}" in
  --ort-only) install_ort ;;
  --arm64) install_arm64_tools; install_arm64_sysroot ;;
  *) install_packages; install_ort ;;
esac
