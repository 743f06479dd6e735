# One Makefile whose targets CI calls. Every target creates or refreshes .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SEGLENS_DATA_DIR ?= $(CURDIR)/data
# Tests, CI and benchmarks never touch the network (the hub tests serve a loopback hub);
# `make run` and the CLI download models from the Hugging Face hub on first use.
OFFLINE := HF_HUB_OFFLINE=1

.PHONY: venv run doctor test test-fast test-ray lint bench browser-deps clean

venv: $(STAMP)

# The constraints file pins the CPU torch wheel on this machine; pyproject.toml stays open so
# users with CUDA keep their own torch.
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[server,dev,ray,onnx]'
	# Only for the file CLIP's real BPE merges ship in (tests and benchmarks build CLIP's own
	# tokenizer from it offline); never imported, so none of its dependencies are needed.
	$(BIN)/python -m pip install -q --no-deps open_clip_torch==3.3.0
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright's own browser download does not work here).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

# A real profile (cpu-fast unless SEGLENS_PROFILE says otherwise): its weights download on
# first start, with progress here and in the UI's status line. Without network it stops
# within seconds and says what to do (e.g. `SEGLENS_PROFILE=tiny make run`, random weights).
run: venv
	$(BIN)/seglens serve --profile $${SEGLENS_PROFILE:-cpu-fast}

# What is wrong when `make run` does not work: models, device, hub, disk, LLM.
doctor: venv
	$(BIN)/seglens doctor --profile $${SEGLENS_PROFILE:-cpu-fast}

test: venv browser-deps
	$(OFFLINE) $(BIN)/python -m pytest -q

test-fast: venv
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow and not browser"

# The Ray executor and headless batch suites alone (they start a local Ray cluster; the
# Ray tests are also selectable with -m ray).
test-ray: venv
	$(OFFLINE) $(BIN)/python -m pytest -q tests/integration/test_ray_executor.py tests/integration/test_batch_cli.py

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: venv
	$(OFFLINE) $(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
