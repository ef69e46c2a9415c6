# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both build .venv on first use; it is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv demo test bench clean
venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[serve,train,dev]"
	rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(VENV)/bin/mesp demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
