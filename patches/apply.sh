#!/usr/bin/env bash
# Apply QuantMap's storage-model patch series (per-dataspace bit widths, packed words) to a Timeloop
# source tree.
#
# Usage: apply.sh [--detect] SRC_DIR
#   SRC_DIR: a checkout or plain export of NVlabs/timeloop at one of the supported bases:
#     4a74d71  commit 4a74d71af0ec95f4d11767963e7868b7e7d6db17 (the base of the authors' fork)
#     v3.0.3   tag v3.0.3, commit 6b41058f88bf6c70e04927f5907f20b8203e0498
#   --detect: only print the detected base and exit.
# The base is taken from the git commit (or tag) when SRC_DIR is a git checkout, else from its
# content (src/mapspaces/ruby.cpp first appears between the two bases). The whole series is
# dry-run first, so a tree it does not fit is left untouched; an already patched tree is left as is.
set -euo pipefail

FORKBASE_REV=4a74d71af0ec95f4d11767963e7868b7e7d6db17
V303_REV=6b41058f88bf6c70e04927f5907f20b8203e0498
HERE=$(cd "$(dirname "$0")" && pwd)

die() { printf 'apply.sh: %s\n' "$*" >&2; exit 1; }

DETECT=0
if [[ ${1:-} == --detect ]]; then DETECT=1; shift; fi
[[ $# -eq 1 ]] || die "usage: apply.sh [--detect] SRC_DIR"
SRC=$1
[[ -f $SRC/src/model/buffer.cpp && -f $SRC/include/workload/workload.hpp ]] \
  || die "$SRC is not a Timeloop source tree (no src/model/buffer.cpp); give the top folder of a checkout of NVlabs/timeloop"

# The base of SRC: by git commit or tag when it is a checkout, else by content.
detect_base() {
  local head tags
  if head=$(git -C "$SRC" rev-parse -q --verify 'HEAD^{commit}' 2>/dev/null) \
     && [[ $(git -C "$SRC" rev-parse --show-toplevel 2>/dev/null) -ef $SRC ]]; then
    tags=$(git -C "$SRC" tag --points-at HEAD 2>/dev/null || true)
    case $head in
      "$FORKBASE_REV") echo 4a74d71; return;;
      "$V303_REV") echo v3.0.3; return;;
    esac
    [[ $'\n'$tags$'\n' == *$'\n'v3.0.3$'\n'* ]] && { echo v3.0.3; return; }
  fi
  if [[ -f $SRC/src/mapspaces/ruby.cpp ]]; then echo v3.0.3; else echo 4a74d71; fi
}

BASE=$(detect_base)
if ((DETECT)); then echo "$BASE"; exit 0; fi

SERIES=("$HERE/$BASE/"*.patch)
[[ -f ${SERIES[0]} ]] || die "no patches in $HERE/$BASE"
command -v patch >/dev/null || die "GNU patch is needed (apt-get install patch)"

# The patches of a series touch disjoint hunks, so each can be dry-run against the tree as it is.
dry_run_all() { # extra patch options, e.g. -R
  local p
  for p in "${SERIES[@]}"; do patch -d "$SRC" -p1 "$@" --dry-run --batch -s -f <"$p" >/dev/null 2>&1 || return 1; done
}
if dry_run_all -R; then echo "apply.sh: $SRC already has the $BASE series (${#SERIES[@]} patches)"; exit 0; fi
if ! dry_run_all --forward; then
  for p in "${SERIES[@]}"; do
    out=$(patch -d "$SRC" -p1 --forward --dry-run --batch -f <"$p" 2>&1) \
      || die "$(basename "$p") does not apply to $SRC (detected base $BASE: is it another Timeloop version, or partly patched?); nothing was changed:
$out"
  done
fi
for p in "${SERIES[@]}"; do
  patch -d "$SRC" -p1 --forward --batch -s --no-backup-if-mismatch <"$p"
  echo "applied $(basename "$p")"
done
echo "apply.sh: $SRC now has the $BASE series (${#SERIES[@]} patches)"
