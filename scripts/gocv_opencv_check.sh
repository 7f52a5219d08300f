#!/usr/bin/env bash
# Evidence for docs/jetson.md's gocv/OpenCV pairing table: compiles the C++
# shims of gocv (the release go.mod pins, and v0.34.0 for contrast) against
# OpenCV headers on both sides of JetPack 6's 4.8.0: Debian 12's 4.6.0 (the
# host's libopencv-dev) and Debian 13's 4.10.0 (its -dev packages unpacked
# into a temporary folder with a private apt state, nothing installed).
# Prints one line per gocv/OpenCV pair; exits non-zero if the pinned gocv
# fails against either. About a minute and 6 MB of downloads.
#
#   scripts/gocv_opencv_check.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/versions.env"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Debian 13 (trixie) OpenCV headers, amd64, without installing anything.
apt_opts=(-q -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts="$tmp/empty.d"
  -o Dir::State::Lists="$tmp/lists" -o Dir::State::status="$tmp/status" -o Dir::Cache="$tmp/cache"
  -o Dir::Etc::Preferences="$tmp/preferences" -o Dir::Etc::PreferencesParts="$tmp/empty.d"
  -o APT::Architecture=amd64 -o APT::Sandbox::User=root -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false)
mkdir -p "$tmp"/{lists/partial,cache/archives/partial,empty.d,debs,trixie}
: >"$tmp/status"; : >"$tmp/preferences"
echo "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${GIDEDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian} trixie main" >"$tmp/sources.list"
apt-get "${apt_opts[@]}" update -qq
# opencv2/opencv.hpp includes every module opencv_modules.hpp lists.
(cd "$tmp/debs" && apt-get "${apt_opts[@]}" download -qq \
  libopencv-{core,imgproc,imgcodecs,videoio,highgui,dnn,objdetect,features2d,calib3d,photo,video,flann,ml,stitching,contrib,shape,superres,videostab,viz}-dev)
for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/trixie"; done

declare -A headers=(
  ["$(pkg-config --modversion opencv4) (Debian 12)"]=/usr/include/opencv4
  ["$(sed -n 's/^#define CV_VERSION_\(MAJOR\|MINOR\|REVISION\) *\([0-9]*\)/\2/p' "$tmp/trixie/usr/include/opencv4/opencv2/core/version.hpp" | paste -sd.) (Debian 13)"]="$tmp/trixie/usr/include/opencv4"
)
status=0
for gocv in "$GOCV_VERSION" v0.34.0; do
  src="$(cd "$root" && GOFLAGS=-mod=mod go mod download -json "gocv.io/x/gocv@$gocv" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  for opencv in "${!headers[@]}"; do
    failed=()
    for cpp in "$src"/*.cpp; do
      g++ -std=c++11 -fsyntax-only -I"${headers[$opencv]}" "$cpp" 2>/dev/null || failed+=("$(basename "$cpp")")
    done
    if [ ${#failed[@]} -eq 0 ]; then
      echo "gocv $gocv + OpenCV $opencv: all $(ls "$src"/*.cpp | wc -l) C++ shims compile"
    else
      echo "gocv $gocv + OpenCV $opencv: FAILS in ${failed[*]}"
      [ "$gocv" = "$GOCV_VERSION" ] && status=1
    fi
  done
done
exit $status
