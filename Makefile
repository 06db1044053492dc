# viridian — two commands: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
LISTEN ?= 127.0.0.1:8080
PYTEST_ARGS ?=

.PHONY: deps run test lint typecheck guestkit bench install-systemd clean

deps:
	@bash scripts/install-deps.sh

guestkit: deps
	@$(BIN)/viridian guestkit build

run: deps
	@bash scripts/run-demo.sh $(LISTEN)

# --dist loadfile: each test module runs on one worker, so module-scoped guests are shared
# (pytest 9 ignores xdist_group's node-id suffix, which makes --dist loadgroup split them).
# --no-loadscope-reorder keeps tests/conftest.py's order (longest modules first, from
# tests/module_seconds.json) instead of xdist's most-tests-first.
test: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check src tests bench

typecheck: deps
	$(BIN)/mypy

bench: deps
	$(BIN)/python bench/bench_lifecycle.py
	$(BIN)/python bench/bench_disks.py
	$(BIN)/python bench/bench_checkpoints.py
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_redfish.py

# Install the systemd units (service + host-shutdown stop actions) on a systemd host.
install-systemd: deps
	ln -sf $(abspath $(BIN))/viridian /usr/local/bin/viridian
	install -m 0644 packaging/systemd/*.service /etc/systemd/system/
	systemctl daemon-reload
	systemctl enable --now viridian.service viridian-host-shutdown.service

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
