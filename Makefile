# The two quick-start commands: `make run` (the app) and `make test` (everything CI runs).
# Both install what they need first (Debian packages, .venv, Python and npm packages).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test check lint bench screenshots bootstrap-run bootstrap-test clean

# Without a graphical session it says so (and what to do) instead of starting anything.
# With no key yet, `make run` shows the self-contained demo (throwaway registry, keychain and
# CARGO_HOME; the real dialog; a real `cargo publish`); afterwards it runs the app itself.
run: bootstrap-run
	@if [ -z "$(ARGS)" ] && ! $(PY) -m gui_approver.client.display; then exit 1; fi; \
	if [ -n "$(ARGS)" ] || $(VENV)/bin/gui-approver key list --json 2>/dev/null | grep -q '"kip"'; then \
	    exec $(VENV)/bin/gui-approver $(ARGS); \
	else \
	    echo "No key yet: running the demo first (gui-approver demo); then starting the app."; \
	    $(VENV)/bin/gui-approver demo; \
	    exec $(VENV)/bin/gui-approver; \
	fi

test: bootstrap-test lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest $(PYTEST_ARGS)

# The inner loop (under a minute): lint and the unit tests, fuzzing with the small profile.
check: lint
	HYPOTHESIS_PROFILE=dev $(PY) -m pytest -q -x tests/unit $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check gui_approver tests
	$(VENV)/bin/ruff format --check gui_approver tests
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/vulture

bootstrap-run:
	@bash packaging/bootstrap.sh run

bootstrap-test:
	@bash packaging/bootstrap.sh test

clean:
	rm -rf $(VENV) build dist *.egg-info tests/node/node_modules

# -- packaging (issue #7) ---------------------------------------------------------------------
# `make bundle`: the one-folder PyInstaller bundle in $(BUNDLE_DIST)/gui-approver/ with both
# executables side by side. Installs the `bundle` extra's requirements (only those: the
# project's own install is left alone) the first time and whenever pyproject.toml changes.
BUNDLE_DIST ?= dist
BUNDLE_WORK ?= build/pyinstaller

.PHONY: bundle icons wheel

bundle: $(VENV)/.bundle-deps
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath $(BUNDLE_DIST) \
	    --workpath $(BUNDLE_WORK) packaging/pyinstaller/gui-approver.spec
	@du -sh $(BUNDLE_DIST)/gui-approver

$(VENV)/.bundle-deps: pyproject.toml
	@[ -x $(PY) ] || bash packaging/bootstrap.sh run
	$(PY) -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb")); \
	    print("\n".join(d["project"]["optional-dependencies"]["bundle"]))' > $@.req
	$(PY) -m pip install -q -r $@.req
	@rm -f $@.req && touch $@

# Re-render the icons (SVG masters -> PNGs) after editing packaging/make_icons.py.
icons: bootstrap-run
	$(PY) packaging/make_icons.py

# The wheel and sdist (pipx-installable) in dist/.
wheel: bootstrap-test
	$(PY) -m build --outdir dist .

# -- benchmark (issue #6) ----------------------------------------------------------------------
# `make bench`: bridge round trip, cargo with our provider vs cargo:token / cargo:paseto, dialog
# latency, cold start and RSS, 200 concurrent requests. Medians with min/max; prints the table
# and writes bench-results.txt and bench-results.md. A script, not a test. BENCH_ARGS=--runs 20
bench: bootstrap-test
	$(PY) tests/benchmarks/bench.py $(BENCH_ARGS)
