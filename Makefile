# One Makefile whose targets CI calls. Every target creates or refreshes .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export SEGLENS_DATA_DIR ?= $(CURDIR)/data

.PHONY: venv run test test-fast test-ray lint bench browser-deps clean

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

run: venv
	$(BIN)/seglens serve --profile $${SEGLENS_PROFILE:-tiny}

test: venv browser-deps
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# The Ray executor and headless batch suites alone (they start a local Ray cluster; the
# Ray tests are also selectable with -m ray).
test-ray: venv
	$(BIN)/python -m pytest -q tests/integration/test_ray_executor.py tests/integration/test_batch_cli.py

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
