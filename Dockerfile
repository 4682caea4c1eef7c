# QuantMap image: the project with its built-in engine.
#
#   docker build -t quantmap .
#   docker run --rm -v "$PWD/results:/opt/quantmap/results" quantmap            # default experiment
#
# To use the real Timeloop/Accelergy binaries, build on an image that already contains them
# (for example one of the official Timeloop/Accelergy infrastructure images) and pick the engine:
#
#   docker build --build-arg BASE=<image with timeloop-mapper, timeloop-model, accelergy> -t quantmap-tl .
#   docker run --rm quantmap-tl --set engine.name=timeloop
#
# This file never builds or downloads Timeloop itself: with the default base, only the built-in
# engine is available. TORCH_SPEC and PIP_EXTRA_ARGS let you choose a CPU-only torch wheel source.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_SPEC="torch==2.13.0"
ARG PIP_EXTRA_ARGS=""
# Optional extras, e.g. --build-arg EXTRAS="[ray]" for the Ray executor.
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

WORKDIR /opt/quantmap
RUN python3 -m pip install --no-cache-dir ${PIP_EXTRA_ARGS} "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY wrapper ./wrapper
COPY arch_templates ./arch_templates
COPY patches ./patches
RUN python3 -m pip install --no-cache-dir -e ".${EXTRAS}" \
    && python3 -c "import wrapper.explore"

ENTRYPOINT ["python3", "-m", "wrapper.explore"]
