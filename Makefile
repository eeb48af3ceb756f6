# The README's two commands. Both set everything up first (idempotent, quick when done).
#   make demo   the flagship incident replay on the local backend, both profiles, with verdicts
#   make test   lint (ruff, format, mypy strict over code, tests and benchmarks), then the whole
#               test suite (unit, integration, docker, browser), as CI runs it

FLAGSHIP := scenarios/paradex-2026-01-19-db-restart-race.yaml
PY := .venv/bin/python

.PHONY: demo test lint help
help:
	@echo "make demo   run the flagship scenario (vulnerable then hardened) and print the verdicts"
	@echo "make test   install everything and run the test suite"
	@echo "make lint   ruff and mypy"

demo:
	@bash .ci/setup
	@.venv/bin/l2chaos run $(FLAGSHIP) --profile vulnerable --profile hardened

test:
	@bash .ci/setup --tests --docker
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && bash .ci/typecheck
	@$(PY) -m pytest $(PYTEST_ARGS)

lint:
	@bash .ci/setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && bash .ci/typecheck
