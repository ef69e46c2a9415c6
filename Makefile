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

# The SAM CLI is part of the test environment: `sam validate --lint` and the SAM transform run in the suite.
test: $(STAMP) .venv-sam/bin/sam .venv-checkov/bin/checkov
	MESP_REQUIRE_SAM=1 MESP_REQUIRE_CHECKOV=1 $(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

# The SAM CLI lives in its own venv: installed into .venv it would downgrade boto3 and pydantic.
.PHONY: sam-venv sam-check
sam-venv: .venv-sam/bin/sam
.venv-sam/bin/sam:
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/pip install -q aws-sam-cli

# sam validate --lint, the template tests with SAM required, and a real `sam build` with its sizes.
sam-check: $(STAMP) .venv-sam/bin/sam
	SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint
	MESP_REQUIRE_SAM=1 $(VENV)/bin/python -m pytest -q tests/integration/test_template.py
	$(VENV)/bin/python benchmarks/sam_build_size.py

# checkov (the template scan in tests/reliability/test_security.py) has its own venv too: installed into .venv
# it would downgrade boto3 (to 1.35), networkx and packaging.
.PHONY: checkov-venv
checkov-venv: .venv-checkov/bin/checkov
.venv-checkov/bin/checkov:
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q checkov
