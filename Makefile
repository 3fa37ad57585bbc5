# The two commands the README opens with: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install system-deps observability lint typecheck test unit integration soak faults demo down bench clean

system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,devstack,bench]'
	@touch $(STAMP)

# Jaeger for `dev up --observability` and the trace test: built once with Go from its
# module into ~/.cache/tradesense-streaming/jaeger/ (~8 CPU-minutes once; then a no-op).
observability: $(STAMP)
	@$(PY) -m streaming.devstack.observability >/dev/null || \
		echo "Jaeger not built: 'dev up --observability' and the trace test need it" >&2

install: system-deps $(STAMP) observability

lint: install
	$(BIN)/ruff check streaming connectors tests bench scripts examples
	$(BIN)/ruff format --check streaming connectors tests bench scripts examples

typecheck: install
	$(BIN)/mypy streaming connectors scripts/demo_consumer.py examples

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -m "not integration" tests $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

# Full-size fault runs (make test runs the same tests at smoke size).
soak: install
	AUDIT_SOAK_EVENTS=20000 AUDIT_SOAK_KILLS=5 AUDIT_OUTAGE_S=20 \
	OUTBOX_SOAK_EVENTS=20000 OUTBOX_SOAK_KILLS=5 $(BIN)/pytest -s \
		tests/integration/audit/test_sink_kill.py tests/integration/audit/test_sink_outage.py \
		tests/integration/outbox/test_relay_kill.py

# The full fault suite on three local brokers (make test runs its short version):
# prints the fault table and writes tests/faults/REPORT.md stamped with the commit.
FAULTS_RESULTS ?= .faults/results.jsonl
faults: install
	@mkdir -p $(dir $(FAULTS_RESULTS)) && rm -f $(FAULTS_RESULTS)
	FAULTS_FULL=1 FAULTS_RESULTS=$(FAULTS_RESULTS) \
	AUDIT_SOAK_EVENTS=$${AUDIT_SOAK_EVENTS:-20000} AUDIT_SOAK_KILLS=$${AUDIT_SOAK_KILLS:-5} \
	AUDIT_OUTAGE_S=$${AUDIT_OUTAGE_S:-20} $(BIN)/pytest $(PYTEST_ARGS) tests/faults \
		tests/integration/audit/test_sink_kill.py tests/integration/audit/test_sink_outage.py; \
	rc=$$?; $(PY) -m tests.faults.report $(FAULTS_RESULTS) $$([ $$rc = 0 ] && echo passed || echo failed); \
	exit $$rc

# Benchmarks (ratios against baselines run side by side, interleaved); needs the local
# stack. Writes bench/results/<date>.json + .png and the generated block of bench/README.md.
BENCH_OUT ?= bench/results/$(shell date -u +%F).json
BENCHES := producer consumer audit_sink registry latency memory serde
bench: install
	$(BIN)/streaming dev up
	rm -f $(BENCH_OUT)
	eval "$$($(BIN)/streaming dev env --show-secrets)" && for b in $(BENCHES); do \
		echo "== bench_$$b"; $(PY) -m bench.bench_$$b --out $(BENCH_OUT) || exit 1; done
	$(PY) -m bench.report $(BENCH_OUT) --readme

demo: install
	@bash scripts/demo.sh

down:
	$(BIN)/streaming dev down

clean: down
	rm -rf .streaming .mypy_cache .ruff_cache .pytest_cache
