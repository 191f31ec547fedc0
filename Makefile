# The two commands of the README's Quick start:
#   make lab    set everything up, then open the notebooks in JupyterLab
#   make test   set everything up, then run the whole test suite
# and, while editing: make quick   ruff and the tests without a browser, nbval, a second engine
# or SIGKILL rounds, on two processes (pytest-xdist; under a minute)
# Both run on several processes (pytest-xdist): --dist loadgroup keeps what may not run side by side
# in one group, in order (a notebook's cells; the second engine's tests: conftest.py), and
# --no-loadscope-reorder hands the tests out in conftest.py's order, the longest first (by default xdist
# hands out the biggest groups first, and the SIGKILL rounds began at 92 s). The tests
# marked `alone` (they change or judge what every test shares) and, in make test, the browser tests
# (a JupyterLab in Chromium, whose pages time out on a machine this busy) run after the rest, one
# at a time.
# Each step is safe to repeat; a step that is already done costs a second or two.

PYTHON ?= python3
# Let Python keep compiled files (in __pycache__, ignored by git) even where the environment says not
# to (PYTHONDONTWRITEBYTECODE): else every pytest process rewrites every test module's asserts anew.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# `make lab` listens on JUPYTER_PORT (if it is taken, Jupyter tries the next ones) and takes a
# JUPYTER_TOKEN you set, else makes one and prints the link.
JUPYTER_PORT ?= 8888
TOKEN_FLAG := $(if $(JUPYTER_TOKEN),--IdentityProvider.token=$(JUPYTER_TOKEN))
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

.PHONY: lab test quick setup engine image browser notebooks bench lint clean

# Serve the repository root, so that cube/ is one click away, and open the notebooks folder.
lab: setup
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(JUPYTER_PORT) $(TOKEN_FLAG) $(ROOT_FLAG) \
		--ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks

test: setup browser
	$(BIN)/ruff check cube tests benchmarks conftest.py
	$(BIN)/ruff format --check cube tests benchmarks conftest.py
	$(BIN)/pytest -n 4 --dist loadgroup --no-loadscope-reorder -m "not alone and not browser"
	$(BIN)/pytest -m "alone or browser"

quick: setup
	$(BIN)/ruff check cube tests benchmarks conftest.py
	$(BIN)/ruff format --check cube tests benchmarks conftest.py
	$(BIN)/pytest tests -m "not browser and not second_engine and not sigkill and not slow" -q -n 2 \
		--dist loadgroup  # no test marked alone is quick

setup: $(VENV)/.installed $(LAB_SETTINGS) engine image

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cube needs Python 3.11 or newer: run 'make PYTHON=python3.12 ...'" >&2; exit 1; }
	@# Debian's python3 has no venv (ensurepip) until python3-venv is installed: as root, install it
	$(PYTHON) -m venv $(VENV) || { [ -f /etc/debian_version ] && [ "$$(id -u)" = 0 ] && rm -rf $(VENV) && \
		echo "cube: installing Debian's python3-venv" >&2 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
		$(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# JupyterLab's defaults for this venv: no news prompt, no update check.
$(LAB_SETTINGS): scripts/jupyterlab-overrides.json $(VENV)/.installed
	mkdir -p $(dir $@) && cp $< $@

engine:
	@bash scripts/engine.sh

image: $(VENV)/.installed engine
	@if [ -f /etc/debian_version ] && [ "$$(id -u)" = 0 ] && ! dpkg -s busybox-static >/dev/null 2>&1; then \
		echo "cube: installing Debian's busybox-static for the demo image" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; \
	fi
	$(BIN)/python -c 'import cube; print("demo image:", cube.ensure_demo_image())'

browser: $(VENV)/.installed
	@bash scripts/browser.sh $(BIN)/python
	@# the two-engine tests make a bridge with `ip`; notebook 06 shows its calls with curl
	@if ! { command -v ip && command -v curl; } >/dev/null 2>&1 && [ -f /etc/debian_version ] && [ "$$(id -u)" = 0 ]; then \
		echo "cube: installing Debian's iproute2 and curl for the tests" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 curl >/dev/null; \
	fi

# Run every notebook again and store its outputs: needed after changing code a notebook shows
# (show_source) or whose output it prints, else nbval finds the stored outputs stale.
# CUBE_WORKBOOK: a workbook of its own, empty, so the stored notebooks show what a new learner sees.
notebooks: setup
	export CUBE_WORKBOOK="$$(mktemp -d)/my_worker.py"; for nb in notebooks/[0-9][0-9]-*.ipynb; do \
		$(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done

bench: setup
	$(BIN)/python benchmarks/bench_worker.py
	$(BIN)/python benchmarks/bench_loop.py
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_db.py
	$(BIN)/python benchmarks/bench_memory.py

clean:
	rm -rf $(VENV) *.egg-info
