# Build the book, serve it, test everything. Each target sets up .venv on first use.
#   make book    build the site into _build/html, executing every chapter (in parallel)
#   make serve   serve _build/html on http://127.0.0.1:8000
#   make check   the fast loop: unit, contract and bad-input tests and doctests (no book build, no browser)
#   make test    run the whole test suite (unit, notebooks, book build, browser)
#   make lab     open JupyterLab at the repository root, in the same environment
#   make classroom  build the nbgrader course in _build/classroom and check its grading

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# Torch CPU threads in every process that executes chapters or tests (sets OMP_NUM_THREADS).
# One thread is the default: the chapters train small 2-D flows, and on a 2-core machine a kernel
# with 2 threads next to the build's own process ran the opening chapter over 5x slower.
# `make book TORCH_THREADS=` (empty) leaves torch's default of one thread per core.
TORCH_THREADS ?= 1

THREADS_ENV := $(if $(TORCH_THREADS),OMP_NUM_THREADS=$(TORCH_THREADS) MKL_NUM_THREADS=$(TORCH_THREADS),)

.PHONY: book serve check test chromium lab classroom

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when requirements.txt or pyproject.toml change.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# Every chapter is executed, JOBS at a time (default: one per CPU core), then the site is built
# from those results with `jupyter-book build . --all -W -n --keep-going` (see _ext/build_book.py).
JOBS ?=
book: $(VENV)/.installed
	$(THREADS_ENV) $(BIN)/python _ext/build_book.py $(if $(JOBS),--jobs $(JOBS),)
	@echo
	@echo "The book is in _build/html. Open it directly:"
	@echo "    file://$(CURDIR)/_build/html/index.html"
	@echo "or serve it (then visit http://127.0.0.1:$(PORT)):"
	@echo "    make serve"

serve:
	@test -f _build/html/index.html || { echo "No built site yet: run 'make book' first." >&2; exit 1; }
	@echo "Serving _build/html on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# The browser tests drive Debian's chromium: install it when it is missing (needs root or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# The fast loop, for while you change flowlab: every test but those that read the built book, drive a
# browser or JupyterLab, build the classroom, or train for long (the markers in pyproject.toml).
check: $(VENV)/.installed
	$(THREADS_ENV) $(BIN)/python -m pytest -q -m "not book and not browser and not classroom and not slow"

test: $(VENV)/.installed chromium
	$(THREADS_ENV) $(BIN)/python -m pytest

# JupyterLab at the repository root (see _ext/lab_server.py): nbstripout becomes this clone's git
# filter for notebooks (.gitattributes names it), so git sees them without outputs whatever
# JupyterLab saves, and a notebook that was only run stays clean in `git status`.
lab: $(VENV)/.installed
	$(THREADS_ENV) $(BIN)/python _ext/lab_server.py

# The nbgrader course, one assignment per chapter, checked in a scratch copy (minutes); never deletes
# a course with submissions. `make classroom CHAPTERS=circles,linear` builds only those chapters.
classroom: $(VENV)/.installed
	$(THREADS_ENV) $(BIN)/python _ext/classroom/classroom.py --out _build/classroom $(if $(CHAPTERS),--chapters $(CHAPTERS))
