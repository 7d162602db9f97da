# Everything a fresh machine needs is done by these targets: the virtualenv,
# the install, and whatever the tests start (PostgreSQL, rclone, ...).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m tests.run

clean:
	rm -rf $(VENV) var .pytest_cache
