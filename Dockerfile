# QuantMap image: the project with its built-in engine, optionally with a mixed-precision Timeloop.
#
#   docker build -t quantmap .
#   docker run --rm -v "$PWD/results:/opt/quantmap/results" quantmap            # default experiment
#
# Mixed-precision Timeloop built from source (optional stage below, off by default): upstream
# NVlabs/timeloop at TIMELOOP_REF, patched with patches/ (per-dataspace bit widths, packed words)
# and built with patches/build.sh into /opt/timeloop (on PATH):
#
#   docker build --build-arg TIMELOOP_REF=v3.0.3 -t quantmap-tl .
#   docker build --build-arg TIMELOOP_REF=4a74d71af0ec95f4d11767963e7868b7e7d6db17 -t quantmap-tl .
#   docker build --build-context timeloop-src=PATH/TO/timeloop -t quantmap-tl .   # local checkout
#   docker run --rm quantmap-tl --set engine.name=timeloop
#
# TIMELOOP_REF must be the tag v3.0.3 or the full 40-digit commit 4a74d71... (the two bases the
# series exists for); a local source tree (named build context timeloop-src, a checkout or export
# of one of those bases) needs no network for Timeloop and wins over TIMELOOP_REF. Accelergy is not
# part of this stage: give energy tables, or use a BASE that has it. Alternatively build on an
# image that already contains Timeloop and Accelergy (stock Timeloop then runs with QuantMap's spec
# rewrite, see patches/README.md):
#
#   docker build --build-arg BASE=<image with timeloop-mapper, timeloop-model, accelergy> -t quantmap-tl .
#
# BASE (the final image) and TIMELOOP_BASE (the Timeloop build stage) may be any Debian-like image
# with python3 and python3-venv (BASE) or apt-get (TIMELOOP_BASE), e.g. a debootstrapped bookworm.
# TORCH_SPEC and PIP_EXTRA_ARGS choose the torch wheel and where pip finds it and the project's
# dependencies (e.g. a CPU-only wheel source, a local mirror: --find-links DIR --index-url URL).
ARG BASE=python:3.11-slim
ARG TIMELOOP_BASE=debian:bookworm-slim
ARG TIMELOOP_REF=""

# The local Timeloop source: empty unless a build context of this name replaces the stage
# (a marker file only, so the stage below knows to fetch from TIMELOOP_REPO instead).
FROM scratch AS timeloop-src
COPY patches/README.md /NO-LOCAL-TIMELOOP-SOURCE

# Optional stage: with TIMELOOP_REF empty and no local source it only creates an empty
# /opt/timeloop. Otherwise it takes the local source or fetches upstream Timeloop at that ref,
# applies and builds the patch series, and, because the final image has none of the -dev packages, copies the shared libraries the binaries load
# (except the C runtime) next to Timeloop's own in /opt/timeloop/lib, where their rpath points.
FROM ${TIMELOOP_BASE} AS timeloop
ARG TIMELOOP_REF
ARG TIMELOOP_REPO=https://github.com/NVlabs/timeloop.git
ARG TIMELOOP_JOBS=""
COPY patches /opt/quantmap-patches
COPY --from=timeloop-src / /tmp/timeloop/
RUN set -eux; mkdir -p /opt/timeloop; \
    if [ -e /tmp/timeloop/NO-LOCAL-TIMELOOP-SOURCE ]; then rm -rf /tmp/timeloop; fi; \
    if [ -n "${TIMELOOP_REF}" ] || [ -d /tmp/timeloop ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends ca-certificates git patch g++ scons patchelf \
        libconfig++-dev libboost-dev libboost-iostreams-dev libboost-serialization-dev \
        libyaml-cpp-dev libncurses-dev libtinfo-dev libgpm-dev; \
      if [ ! -d /tmp/timeloop ]; then \
        git init -q /tmp/timeloop; \
        git -C /tmp/timeloop fetch -q --depth 1 "${TIMELOOP_REPO}" "${TIMELOOP_REF}"; \
        git -C /tmp/timeloop checkout -q FETCH_HEAD; \
      fi; \
      bash /opt/quantmap-patches/apply.sh /tmp/timeloop; \
      JOBS="${TIMELOOP_JOBS:-$(nproc)}" bash /opt/quantmap-patches/build.sh /tmp/timeloop /opt/timeloop; \
      ldd /opt/timeloop/bin/* /opt/timeloop/lib/*.so | awk '$3 ~ /^\// {print $3}' | sort -u \
        | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' \
        | grep -v '^/opt/timeloop/' | xargs -r cp -L -t /opt/timeloop/lib; \
      rm -rf /tmp/timeloop /var/lib/apt/lists/*; \
    fi

FROM ${BASE}

ARG TORCH_SPEC="torch==2.13.0"
ARG PIP_EXTRA_ARGS=""
# Optional extras, e.g. --build-arg EXTRAS="[ray]" for the Ray executor.
ARG EXTRAS=""

# A virtual environment: the same on python:3.11-slim and on a Debian python3, whose system
# interpreter refuses pip installs (PEP 668).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PATH=/opt/timeloop/bin:/opt/venv/bin:$PATH \
    TIMELOOP_DIR=/opt/timeloop

# Empty unless TIMELOOP_REF or a local source was given (then: bin/, lib/, problem-shapes/ of the
# patched build).
COPY --from=timeloop /opt/timeloop /opt/timeloop

WORKDIR /opt/quantmap
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir ${PIP_EXTRA_ARGS} "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY wrapper ./wrapper
COPY arch_templates ./arch_templates
COPY patches ./patches
COPY examples ./examples
RUN python3 -m pip install --no-cache-dir ${PIP_EXTRA_ARGS} -e ".${EXTRAS}" \
    && python3 -c "import wrapper.explore"

ENTRYPOINT ["python3", "-m", "wrapper.explore"]
