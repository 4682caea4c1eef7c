PYTHON ?= python
# make paper DATA=<ImageNet folder with train/ and val/> CKPT=<float checkpoint> [OUT=results/paper]
DATA ?=
CKPT ?=
OUT ?= results/paper

.PHONY: install test bench figures paper container-check

install:
	$(PYTHON) -m pip install torch==2.13.0 && $(PYTHON) -m pip install -e ".[test,ray]"

test:
	$(PYTHON) -m pytest

bench:
	for b in benchmarks/bench_*.py; do $(PYTHON) $$b || exit 1; done

# Hardware-only paper results with the built-in engine: energy vs uniform weight bits on both
# arches (8-bit activations) and the energy saved by remapping under packing. With
# RUN=<results folder of a finished explore run>, also that run's accuracy-vs-energy figure
# (uniform line plus mixed-precision front, test accuracy over seeds).
RUN ?=
figures:
	$(PYTHON) -m wrapper.commands figures -o results/figures
	$(if $(RUN),$(PYTHON) -m wrapper.commands figures --run $(RUN) -o results/figures)

# The full accuracy experiment on user data (experiments/paper.yaml).
paper:
	@test -n "$(DATA)" || { echo "error: give DATA=<ImageNet folder with train/ and val/>" >&2; exit 2; }
	$(PYTHON) -m wrapper.explore --config experiments/paper.yaml -o $(OUT) \
		--set data.root=$(DATA) $(if $(CKPT),--set qat.float_checkpoint=$(CKPT))

# Build the Docker image with podman on a debootstrapped Debian base and run it (by hand; needs
# root, podman and debootstrap): the default experiment, then the patched-Timeloop variant against
# the built-in engine. Settings (TIMELOOP_SRC=<Timeloop checkout>, WORK, EXPERIMENT, ...) are
# documented in the script's header.
container-check:
	bash scripts/container_check.sh
