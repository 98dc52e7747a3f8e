# paypipe developer commands. `make run` and `make test` are the README quickstart.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PAYMENTS ?= 50
STAMP := $(VENV)/.installed

.PHONY: run test unit bench lint typecheck template template-lint sam-validate security schemas schema-compat clean faults

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find_python.sh) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Run the whole pipeline in-process on moto (no AWS account, no Docker).
run: $(STAMP)
	$(VENV)/bin/paypipe run --payments $(PAYMENTS)

## Fault-injection run: duplicates, reordering, crashes, PutEvents partial failures, KMS and
## DynamoDB throttling; ends with a reconciliation and a PAN leak scan (non-zero exit on a violation).
FAULT_PAYMENTS ?= 2000
faults: $(STAMP)
	$(VENV)/bin/paypipe run --faults --payments $(FAULT_PAYMENTS) --out out/faults

## The whole test suite (what CI runs).
test: $(STAMP)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

## Benchmarks on this machine -> BENCHMARKS.md and the usage profile behind `paypipe cost`.
bench: $(STAMP)
	PYTHONPATH=. $(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check src services scripts tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench

## Write infra/sam/template.yaml from infra/sam/shared.yaml and src/paypipe/stack/steps.py.
template: $(STAMP)
	$(PY) scripts/gen_template.py

template-lint: $(STAMP)
	$(VENV)/bin/cfn-lint infra/sam/template.yaml

## `sam validate --lint` with a pinned SAM CLI in its own venv (its pins differ from the project's).
SAM_VENV := .venv-sam
$(SAM_VENV)/bin/sam:
	$$(scripts/find_python.sh) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0

sam-validate: $(SAM_VENV)/bin/sam
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template infra/sam/template.yaml --region us-east-1

## Template security: cfn-lint with the serverless rules, then checkov (pinned, in their own venv).
## Suppressions are inline in the template's Metadata, each with its reason (see README).
SECURITY_VENV := .venv-security
SECURITY_REQS := infra/security/requirements.txt
$(SECURITY_VENV)/.installed: $(SECURITY_REQS)
	@test -x $(SECURITY_VENV)/bin/python || $$(scripts/find_python.sh) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install --quiet -r $(SECURITY_REQS)
	@touch $@

security: $(SECURITY_VENV)/.installed
	$(SECURITY_VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- infra/sam/template.yaml
	$(SECURITY_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		--file infra/sam/template.yaml

schemas: $(STAMP)
	$(PY) scripts/gen_schemas.py

schema-compat: $(STAMP)
	$(PY) scripts/check_schema_compat.py --base $${BASE:-HEAD}

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
