# Everything a fresh machine needs is done by these targets: the virtualenv,
# the install, and whatever the tests start (PostgreSQL, rclone, ...).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test install demo run clean bench bench-portal bench-scale screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m tests.run

# The browser tests once more, saving screenshots of the main pages into docs/img (shown in the README).
screenshots: $(STAMP)
	$(BIN)/python -m tests.tools.browser
	DTN_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q tests/browser

# The user story on this machine: portal, receiver and sender as local processes,
# a 200 MiB file and 520 small files sent, verified, summarised; nothing left running.
demo: $(STAMP)
	$(BIN)/python -m portal.box demo

# The same set-up, left running with the demo accounts at http://127.0.0.1:8000 until Ctrl-C.
run: $(STAMP)
	$(BIN)/python -m portal.box run

# Benchmarks (docs/performance.md): not part of `make test`. Each prints its table with goals
# marked PASS/MISS and writes bench/results/<name>.json.
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,bench]'
	touch $@

# The data path on the test bed (root): the product against rclone's defaults, hand-tuned rclone and iperf3,
# on a clean and a lossy 200 Mbit/s link; sized for under 60 minutes on 2 cores.
# `make bench BENCH_ARGS=--quick` checks the harness with tiny datasets in ~5-8 minutes.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.datapath $(BENCH_ARGS)

# The control plane: 2,000 simulated agents against the portal on PostgreSQL; about 5-6 minutes.
bench-portal: $(BENCH_STAMP)
	$(BIN)/python -m bench.portal

# A million files of 0-1 KiB in one transfer on the loopback (issue 22): the product (TLS, verify on) against
# rclone copy --transfers 64; memory of every process, the API and CSV manifest timed while it runs; under
# 60 minutes on 2 cores. `make bench-scale BENCH_ARGS=--quick` (20,000 files) checks it in ~2 minutes;
# `BENCH_ARGS="--files 100000"` writes bench/results/scale-100000.json.
bench-scale: $(BENCH_STAMP)
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
