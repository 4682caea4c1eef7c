#!/usr/bin/env bash
# Build a (patched) Timeloop source tree with Accelergy support and install it into PREFIX.
#
# Usage: build.sh SRC_DIR PREFIX
#   SRC_DIR: a Timeloop source tree, normally patched by apply.sh first (it is not modified:
#            the build runs in a temporary copy under PREFIX).
#   PREFIX:  install folder; gets bin/ (timeloop-model, timeloop-mapper, ...), lib/,
#            problem-shapes/, build.log, env.sh (source it to put this build first on PATH) and
#            BASE (the Timeloop base that apply.sh detects in SRC_DIR: 4a74d71 or v3.0.3).
# Environment: JOBS (parallel compile jobs, default: all cores), LTO=1 to keep upstream's -flto
# (about twice the build time; outputs are the same without it), NICE (default 10).
# Needs: g++, scons, patchelf and the libraries Timeloop links (Debian/Ubuntu packages:
#   g++ scons patchelf libconfig++-dev libboost-dev libboost-iostreams-dev
#   libboost-serialization-dev libyaml-cpp-dev libncurses-dev libtinfo-dev libgpm-dev).
set -euo pipefail

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: build.sh SRC_DIR PREFIX"
SRC=$(realpath "$1")
[[ -f $SRC/SConstruct && -f $SRC/src/SConscript ]] || die "$SRC is not a Timeloop source tree (no SConstruct)"
for tool in g++ scons patchelf; do
  command -v "$tool" >/dev/null || die "$tool not found; install the packages listed in $0"
done
JOBS=${JOBS:-$(nproc)} LTO=${LTO:-0} NICE=${NICE:-10}
# Absolute: the prefix is baked into the binaries' rpath and into env.sh.
PREFIX=$(realpath -m "$2")
mkdir -p "$PREFIX" && [[ -w $PREFIX ]] || die "$PREFIX is not writable"

tmp=$(mktemp -d "$PREFIX/.build.XXXXXX")
trap 'echo "build.sh: failed; the build folder $tmp is kept (see $tmp/build.log)" >&2' ERR
mkdir "$tmp/src" && tar -C "$SRC" --exclude=./.git -cf - . | tar -C "$tmp/src" -xf -
# The SConscript stops without src/pat; upstream keeps the power-area-timing model in pat-public/.
[[ -e $tmp/src/src/pat ]] || ln -s ../pat-public/src/pat "$tmp/src/src/pat"
if [[ $LTO != 1 ]]; then
  # The LTO link is half of the build time; only the temporary copy is edited.
  sed -i "s/'-O3', '-flto'/'-O3'/" "$tmp/src/src/SConscript"
  ! grep -q flto "$tmp/src/src/SConscript" || die "could not remove -flto from src/SConscript"
fi
echo "build.sh: scons -j$JOBS --accelergy in $tmp/src (log: $tmp/build.log)"
# --accelergy defines USE_ACCELERGY; without it Timeloop silently skips Accelergy when no ERT is given.
(cd "$tmp/src" && nice -n "$NICE" scons -j"$JOBS" --accelergy) >"$tmp/build.log" 2>&1
rm -rf "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/problem-shapes"
cp -a "$tmp/src/bin" "$tmp/src/lib" "$tmp/src/problem-shapes" "$tmp/build.log" "$PREFIX/"
# DT_RPATH (not RUNPATH) to its own lib/: it wins over LD_LIBRARY_PATH, so several Timeloop
# builds on one machine never load each other's libraries.
for b in "$PREFIX/bin/"*; do patchelf --force-rpath --set-rpath "$PREFIX/lib" "$b"; done
! ldd "$PREFIX/bin/timeloop-model" | grep 'not found' || die "unresolved libraries (see ldd $PREFIX/bin/timeloop-model)"
printf '# source me: this Timeloop build first on PATH; named problem shapes from its problem-shapes/\nexport PATH=%q:"$PATH"\nexport TIMELOOP_DIR=%q\n' \
  "$PREFIX/bin" "$PREFIX" >"$PREFIX/env.sh"
bash "$(dirname "$0")/apply.sh" --detect "$SRC" >"$PREFIX/BASE"
trap - ERR
rm -rf "$tmp"
echo "build.sh: installed into $PREFIX (source $PREFIX/env.sh)"
