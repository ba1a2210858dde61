# leadscore — the two commands a newcomer needs:
#   make run    the main job (at this stage: score the sample events with the embedded default model)
#   make test   every check CI runs (format, lints, unit + integration tests, parity, bundle check)
# Both install what they need, idempotently, from the package registries only.

SHELL := /bin/bash
CARGO ?= cargo
PY := .venv/bin/python
export RUST_BACKTRACE ?= 0

.PHONY: run test venv lint rust-test check-bundle bench train clean

venv: .venv/.stamp
.venv/.stamp: models/train/requirements.txt models/train/setup.sh
	sh models/train/setup.sh
	touch $@

run:
	$(CARGO) build --release --bin leadscore
	./target/release/leadscore check --model models/default
	./target/release/leadscore score --model models/default --events tests/fixtures/sample_events.ndjson

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

rust-test: venv
	$(CARGO) test --all-targets

check-bundle:
	$(CARGO) run --quiet --bin leadscore -- check --model models/default

test: lint rust-test check-bundle

# Criterion benchmarks of the core; writes BENCHMARKS.md.
bench:
	mkdir -p target
	$(CARGO) bench --bench core -- --noplot | tee target/bench-core.log
	python3 benches/report.py "$$(grep -o 'state size: [0-9]* bytes' target/bench-core.log | head -1 | cut -d' ' -f3-)" > BENCHMARKS.md

# Retrain the default model (deterministic; rewrites models/default/).
train: venv
	$(PY) models/train/train.py

clean:
	rm -rf target/parity
