# `make test` and `make demo` work as the first command on a fresh machine:
# they create .venv once, install av-seld in editable mode with the dev extra, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.av-seld-installed

.PHONY: install test test-all demo bench bench-gpu clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

# pytest exits 5 when it collects no test; that is not a failure of the project.
test: $(STAMP)
	@$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

demo: $(STAMP)  # the recipe is configs/demo.yaml
	$(BIN)/python -m av_seld demo

bench: $(STAMP)
	$(BIN)/python bench/bench_metrics.py --compare

# GPU figures in one command (training checks and clips/s per recipe, peak memory, inference real-time factor,
# DDP); exits 2 with one line where CUDA is absent. bench/gpu.sh --dry-run checks the script on a CPU.
bench-gpu: $(STAMP)
	PYTHON=$(BIN)/python bench/gpu.sh

clean:
	rm -rf build *.egg-info .pytest_cache runs/demo

# Real recorded sounds (docs/real_sounds.md): fetch the Debian packages once (needs the package registries and
# apt-get), then cut the bank offline. Override SOUNDS_PACKAGES / SOUNDS_OUT to put them elsewhere.
SOUNDS_PACKAGES ?= $(HOME)/.cache/av-seld/sound-packages
SOUNDS_OUT ?= data/realsounds
.PHONY: sounds
sounds: $(STAMP)
	$(BIN)/python -m av_seld fetch-sounds $(SOUNDS_PACKAGES)
	$(BIN)/python -m av_seld build-sounds $(SOUNDS_OUT) --packages-dir $(SOUNDS_PACKAGES)
