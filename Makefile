# Two commands a newcomer needs: `make lab` (install and launch) and `make test` (install and test).
# Both create .venv on first use and reuse it afterwards; installs rerun only when a
# requirements file changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

# Nothing in the default run downloads models or data.
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: lab test lint format constraints clean

lab: $(VENV)/.installed-lab
	$(PY) -m lab demo

test: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

$(PY):
	$(PYTHON) -m venv $(VENV)

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
