# latentzoo: the two set-up-and-go commands are `make demo` and `make test`.
# Each creates .venv if missing, installs latentzoo into it, configures PyTensor once, and runs.

# PYTHON may name an interpreter >= 3.12; otherwise .ci/find-python looks on PATH and in pyenv
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python
# PyTensor's compile cache and config live outside the checkout so that clones share them.
CACHE_DIR ?= $(HOME)/.cache/latentzoo
export PYTENSORRC := $(CACHE_DIR)/pytensorrc
# latentzoo's own numba kernels (cache=True) would otherwise cache next to the sources, per clone
export NUMBA_CACHE_DIR ?= $(CACHE_DIR)/numba
# matplotlib without a screen
export MPLBACKEND := Agg
# the models' matrices are small: OpenBLAS's thread hand-offs cost more than they save
# (a 2x2 triangular solve took 2.5-4 ms with 2 threads on busy cores, 24 us with one)
OPENBLAS_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow bench mutants docs install clean-cache help

help:
	@echo "make demo       install (first time) and run the comparison demo"
	@echo "make test       install (first time) and run the default test suite"
	@echo "make test-slow  the long statistical and browser tests (the part make test leaves out; CI runs both)"
	@echo "make bench      speed benchmarks against hmmlearn and scikit-learn"
	@echo "make mutants    plant known faults in a copy and check that the default tests catch each"
	@echo "make docs       build the docs site (API reference, user guide, executed lessons) into docs/_build/html"

install: $(STAMP)

$(STAMP): pyproject.toml .ci/pytensor-config.sh .ci/find-python
	@# a .venv left by an older interpreter (latentzoo once ran on 3.11) is rebuilt
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    python="$(PYTHON)"; [ -n "$$python" ] || python=$$(.ci/find-python) || exit 1; \
	    echo "creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet -e ".[test]"
	.ci/pytensor-config.sh $(CACHE_DIR) >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	@# the report directory is make demo's own: a second run replaces it
	$(VENV)/bin/latentzoo demo --out latentzoo-report --overwrite

# two workers on two cores: the suite is mostly PyTensor compiling and sampling, both CPU-bound;
# worksteal: a worker that runs out of tests takes some of the other's instead of idling at the end
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal --durations=15

# only the tests marked slow: `make test` then `make test-slow` is the whole suite, which CI runs
test-slow: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) -m pytest -n 2 --dist worksteal -m slow --durations=15

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) benchmarks/hmm.py
	$(PY) benchmarks/gmm.py

# planted faults (tests/mutation/run_mutants.py), one at a time in a temporary copy of the tracked
# files; each runs the default tests that should notice it (1-5 minutes) and, only if those pass,
# the whole default suite before it is called a survivor; prints the score and the survivors and
# fails below 95% killed
mutants: $(STAMP)
	$(PY) tests/mutation/run_mutants.py

# warnings are errors and cross-references nitpicky (docs/conf.py); the lessons run at build time,
# cached by their text in docs/_build/.jupyter_cache, and a lesson that raises fails the build
docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

clean-cache:
	rm -rf $(CACHE_DIR)
