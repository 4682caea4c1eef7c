#!/usr/bin/env bash
# Build QuantMap's container images without a Docker daemon and run them, as a by-hand check that
# the Dockerfile really builds and the image really works.
#
# Usage: scripts/container_check.sh            (or: make container-check [VAR=value ...])
#
# Steps, each timed (the summary with build times and image sizes goes to $WORK/summary.txt):
#   1. base:     debootstrap a minimal Debian (python3, python3-venv, python3-pip) and
#                `podman import` it; reused when the image exists (REBUILD_BASE=1 redoes it).
#   2. image:    `podman build --isolation=chroot` of the Dockerfile on that base.
#   3. explore:  the image's entry point (the default experiment) with the results folder mounted;
#                `podman run` where the runtime allows, else chroot into a mounted container of
#                the image (podman run needs cgroup and rlimit permissions that containers often
#                lack). Checks report.md and pareto.csv.
#   4. timeloop: the same Dockerfile with the patched-Timeloop stage, fed a local Timeloop source
#                tree as the named build context `timeloop-src` (TIMELOOP_SRC, else a clone of
#                TIMELOOP_REPO at TIMELOOP_REF), then `evaluate` of examples/eyeriss-layer with
#                both engines inside it: the stats must agree (scripts/compare_stats.py).
#
# Needs root (debootstrap, chroot, mounts), podman, debootstrap, unshare, git and python3.
# The package sources are this machine's own: the Debian mirror from /etc/apt/sources.list*
# (DEBIAN_MIRROR overrides) and pip's find-links / index-url / extra-index-url / cert (a CA
# bundle, e.g. for a proxy) from `python3 -m pip config list`, passed as build arguments; local
# files and folders among them are mounted read-only into the build. Nothing of it is written into the repository or the Dockerfile.
#
# Environment (all optional):
#   WORK           work folder (default: ${TMPDIR:-/tmp}/quantmap-container-check)
#   SUITE          Debian suite of the base (default bookworm)
#   TIMELOOP_SRC   a Timeloop source tree (checkout or export of v3.0.3 or 4a74d71)
#   TIMELOOP_REPO  git URL or folder to clone when TIMELOOP_SRC is unset
#                  (default https://github.com/NVlabs/timeloop.git), at TIMELOOP_REF (default v3.0.3)
#   EXPERIMENT     --set options for the default experiment (default: a reduced budget, see
#                  below); EXPERIMENT="" runs the default experiment unchanged
#   SKIP_TIMELOOP=1  stop after step 3;  NO_CACHE=1  build without podman's layer cache
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-${TMPDIR:-/tmp}/quantmap-container-check}
SUITE=${SUITE:-bookworm}
BASE_IMAGE=localhost/quantmap-base:$SUITE
IMAGE=localhost/quantmap:check
TL_IMAGE=localhost/quantmap-tl:check
TIMELOOP_REPO=${TIMELOOP_REPO:-https://github.com/NVlabs/timeloop.git}
TIMELOOP_REF=${TIMELOOP_REF:-v3.0.3}
# One generation and one retraining of one front point: the whole pipeline (sensitivity probes,
# search, mapping, final evaluation, report, plots) in a few minutes on a busy 2-core machine.
EXPERIMENT=${EXPERIMENT-search.generations=1 final.points=1 final.seeds=1}
LOGS=$WORK/logs
SUMMARY=$WORK/summary.txt

die() { printf 'container_check: %s\n' "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

[[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot and mounts need it)"
for tool in podman debootstrap unshare chroot git python3; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install -y podman debootstrap)"
done
mkdir -p "$LOGS" && : >"$SUMMARY"

# A step: run "$@" with its output in $LOGS/NAME.log, report the time, show the log tail on failure.
# The subshell keeps `set -e` in force inside functions (a condition such as `if !` would turn it off).
step() {
  local name=$1 t0=$SECONDS rc; shift
  log "$name: $* (log: $LOGS/$name.log)"
  set +e
  (set -e; "$@") >"$LOGS/$name.log" 2>&1
  rc=$?
  set -e
  if ((rc)); then
    tail -n 30 "$LOGS/$name.log" >&2
    die "$name failed (exit $rc) after $((SECONDS - t0)) s (full log: $LOGS/$name.log)"
  fi
  note "$name: $((SECONDS - t0)) s"
}

# The first Debian mirror (not the security archive) in this machine's apt sources.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '/^deb /{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}
         /^URIs:/{for (i = 2; i <= NF; i++) print $i}' "$f"
  done | grep -v -- '-security' | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(debian_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# pip's sources on this machine as pip options, and the local folders among them as mounts.
PIP_ARGS=() VOLUMES=()
while IFS= read -r line; do
  key=${line%%=*} key=${key##*.} value=${line#*=} value=${value//\'/}
  case $key in find-links|index-url|extra-index-url|cert) ;; *) continue;; esac
  for v in $value; do
    [[ " ${PIP_ARGS[*]} " == *" --$key $v "* ]] && continue
    PIP_ARGS+=("--$key" "$v")
    path=${v#file://}
    # A local index's pages link to files beside it (e.g. INDEX/simple -> INDEX/files): mount its parent.
    [[ $key == *index-url ]] && path=$(dirname "$path")
    [[ $path == /* && -e $path && " ${VOLUMES[*]} " != *" $path:$path:ro "* ]] && VOLUMES+=(-v "$path:$path:ro")
  done
done < <(python3 -m pip config list 2>/dev/null || true)
CACHE=() && [[ ${NO_CACHE:-0} == 1 ]] && CACHE=(--no-cache)

image_mb() { echo $(( $(podman image inspect --format '{{.Size}}' "$1") / 1000000 )); }

make_base() {
  local root=$WORK/rootfs
  rm -rf "$root"
  nice debootstrap --variant=minbase --include=python3,python3-venv,python3-pip "$SUITE" "$root" "$MIRROR"
  rm -f "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
  rm -rf "$root"
}

build() { # TAG [extra podman build options]
  local tag=$1; shift
  podman build --isolation=chroot "${CACHE[@]}" "${VOLUMES[@]}" \
    --build-arg BASE="$BASE_IMAGE" --build-arg TIMELOOP_BASE="$BASE_IMAGE" \
    --build-arg PIP_EXTRA_ARGS="${PIP_ARGS[*]}" "$@" -t "$tag" "$HERE"
}

# podman run works where the runtime may set rlimits and cgroups; probed once (after the base).
PODMAN_RUN=no
probe_podman_run() {
  if podman run --rm --entrypoint true "$BASE_IMAGE" >"$LOGS/podman-run-probe.log" 2>&1; then
    PODMAN_RUN=yes
    note "run: podman run"
  else
    note "run: chroot into a mounted container (podman run fails here: $(tail -n 1 "$LOGS/podman-run-probe.log"))"
  fi
}

# Run CMD... in IMAGE with RESULTS mounted at <workdir>/results; an empty CMD runs the entry point.
in_image() { # IMAGE RESULTS [CMD...]
  local image=$1 results=$2; shift 2
  local workdir cid mnt rc=0
  workdir=$(podman image inspect --format '{{.Config.WorkingDir}}' "$image")
  if [[ $PODMAN_RUN == yes ]]; then
    local entry=()
    (($#)) && { entry=(--entrypoint "$1"); shift; }
    podman run --rm -v "$results:$workdir/results" "${entry[@]}" "$image" "$@"
    return
  fi
  local env=() cmd=("$@")
  mapfile -t env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" | sed '/^$/d')
  ((${#cmd[@]})) || mapfile -t cmd < <(podman image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
  # A container (not the image itself) so writes land in a throw-away layer.
  cid=$(podman create "$image")
  mnt=$(podman mount "$cid")
  mkdir -p "$mnt$workdir/results"
  # A private mount namespace: proc, dev and the results folder vanish with the command.
  MNT=$mnt RESULTS=$results WORKDIR=$workdir unshare --mount --propagation private bash -c '
    mount -t proc proc "$MNT/proc" && mount --rbind /dev "$MNT/dev" && mount --rbind /sys "$MNT/sys" \
      && mount --bind "$RESULTS" "$MNT$WORKDIR/results" && exec chroot "$MNT" "$@"' \
    bash env -i HOME=/root "${env[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "${cmd[@]}" || rc=$?
  podman umount "$cid" >/dev/null
  podman rm "$cid" >/dev/null
  return $rc
}

check_results() { # RESULTS
  local report pareto
  report=$(find "$1" -name report.md | head -n 1)
  [[ -s $report ]] || die "no report.md under $1"
  pareto=$(dirname "$report")/pareto.csv
  [[ -s $pareto && $(wc -l <"$pareto") -ge 2 ]] || die "$pareto is missing or has no rows"
  note "results: $report ($(wc -l <"$report") lines), $pareto ($(($(wc -l <"$pareto") - 1)) rows)"
}

note "container check $(date -u '+%F %H:%M') UTC; Debian mirror: $MIRROR; pip: ${PIP_ARGS[*]:-defaults}"
if [[ ${REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$BASE_IMAGE"; then
  step base make_base
else
  note "base: $BASE_IMAGE exists (REBUILD_BASE=1 rebuilds it)"
fi
probe_podman_run
step image build "$IMAGE"
note "sizes: base $(image_mb "$BASE_IMAGE") MB, quantmap $(image_mb "$IMAGE") MB"

rm -rf "$WORK/results" && mkdir -p "$WORK/results"
sets=()
for s in $EXPERIMENT; do sets+=(--set "$s"); done
[[ -n $EXPERIMENT ]] && note "explore: the default experiment with ${sets[*]}"
if ((${#sets[@]})); then
  entry=()
  mapfile -t entry < <(podman image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
  step explore in_image "$IMAGE" "$WORK/results" "${entry[@]}" "${sets[@]}"
else
  step explore in_image "$IMAGE" "$WORK/results"
fi
check_results "$WORK/results"
[[ ${SKIP_TIMELOOP:-0} == 1 ]] && { log "done (SKIP_TIMELOOP=1)"; cat "$SUMMARY"; exit 0; }

src=${TIMELOOP_SRC:-}
if [[ -z $src ]]; then
  src=$WORK/timeloop-src
  rm -rf "$src"
  step clone-timeloop git clone -q --branch "$TIMELOOP_REF" "$TIMELOOP_REPO" "$src"
fi
[[ -f $src/SConstruct ]] || die "$src is not a Timeloop source tree (no SConstruct); set TIMELOOP_SRC"
# No outer nice: patches/build.sh runs the compiler niced itself.
step image-timeloop build "$TL_IMAGE" --build-context timeloop-src="$src"
note "sizes: quantmap-tl $(image_mb "$TL_IMAGE") MB"

# The accounting the patched build follows: 4a74d71 is the fork's base, v3.0.3 counts as stock v3.
base=$(bash "$HERE/patches/apply.sh" --detect "$src")
case $base in 4a74d71) version=fork;; v3.0.3) version=v3;; *) die "unknown Timeloop base '$base' in $src";; esac
note "timeloop: patched $base, compared with the built-in engine's --timeloop-version $version"
rm -rf "$WORK/evaluate" && mkdir -p "$WORK/evaluate"
ex=(examples/eyeriss-layer/arch.yaml examples/eyeriss-layer/components/smartbuffer_RF.yaml
    examples/eyeriss-layer/components/smartbuffer_SRAM.yaml examples/eyeriss-layer/problem.yaml
    examples/eyeriss-layer/mapping.yaml examples/eyeriss-layer/ERT.yaml examples/eyeriss-layer/ART.yaml)
step evaluate-builtin in_image "$TL_IMAGE" "$WORK/evaluate" \
  python3 -m wrapper.evaluate "${ex[@]}" --timeloop-version "$version" --json results/builtin.json
step evaluate-timeloop in_image "$TL_IMAGE" "$WORK/evaluate" \
  python3 -m wrapper.evaluate --engine timeloop "${ex[@]}" --timeloop-version "$version" --json results/timeloop.json
python3 "$HERE/scripts/compare_stats.py" "$WORK/evaluate/builtin.json" "$WORK/evaluate/timeloop.json" \
  | tee -a "$SUMMARY"
log "container check passed"
cat "$SUMMARY"
