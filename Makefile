# The two quick-start commands: `make run` (the app) and `make test` (everything CI runs).
# Both install what they need first (Debian packages, .venv, Python and npm packages).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench screenshots bootstrap-run bootstrap-test clean

run: bootstrap-run
	$(VENV)/bin/gui-approver $(ARGS)

test: bootstrap-test lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check gui_approver tests
	$(PY) -m mypy

bootstrap-run:
	@bash packaging/bootstrap.sh run

bootstrap-test:
	@bash packaging/bootstrap.sh test

clean:
	rm -rf $(VENV) build dist *.egg-info tests/node/node_modules
