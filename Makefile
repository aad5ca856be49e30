# Two commands a newcomer needs: `make lab` (install and launch) and `make test` (install and test).
# Both create .venv on first use and reuse it afterwards; installs rerun only when a
# requirements file changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
CHROMIUM := /usr/bin/chromium

# Nothing in the default run downloads models or data.
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: lab test lint format constraints clean

# The Gradio app on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override).
lab: $(VENV)/.installed-lab
	$(PY) app.py

test: $(VENV)/.installed-test $(CHROMIUM)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

$(PY):
	$(PYTHON) -m venv $(VENV)

# The browser tests drive Debian's Chromium (never `playwright install`); installed once with apt.
$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests (apt-get, once)..."; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "error: the browser tests need Chromium at $(CHROMIUM) and there is no apt-get;" \
	       "install your system's chromium package" >&2; exit 1; \
	fi
	@test -x $(CHROMIUM) || { echo "error: apt-get did not install $(CHROMIUM)" >&2; exit 1; }

$(VENV)/.installed-lab: requirements.txt constraints.txt | $(PY)
	@echo "Installing requirements.txt into $(VENV) (first time: a few minutes)..."
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed-lab requirements-test.txt
	@echo "Installing requirements-test.txt into $(VENV)..."
	$(PIP) -r requirements-test.txt
	@touch $@

# Re-pin every installed package after changing requirements*.txt on purpose.
constraints: $(VENV)/.installed-test
	{ echo "# Exact versions of every package (direct and transitive) that requirements*.txt resolve to,"; \
	  echo "# so a fresh clone installs the same environment. Regenerate: make constraints."; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Benchmarks: every loss against sentence-transformers, the matrix-product floors, tiny's
# training speed and the performance targets -> benchmarks/RESULTS.md (about 40 minutes on a
# quiet 2-core CPU), then the per-loss training speeds -> benchmarks/TRAIN-SPEED.md.
# QUICK=1 (or make bench-quick): about 8 minutes on 2 cores, to benchmarks/RESULTS-quick.md
# (one batch size per loss, two where a target needs them; the targets at 4096 need the full run).
.PHONY: bench bench-quick
bench: $(VENV)/.installed-lab
	$(PY) benchmarks/bench_losses.py $(if $(QUICK),--quick)
	$(if $(QUICK),,$(PY) benchmarks/train_speed.py)

bench-quick:
	$(MAKE) bench QUICK=1
