# sheetlab — the two commands of the README:
#   make book   builds the book into _build/html (installs everything it needs first)
#   make test   runs the whole test suite (installs everything it needs first)
# Both work from a fresh clone on Debian/Ubuntu with nothing installed but the OS.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sheetlab-installed
# The CPU build of torch; on a machine whose pip would take a CUDA build, override, e.g.
#   make book TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH  ?= torch==2.13.0
# Debian packages: FluidSynth (the synthesiser behind pyfluidsynth) and cairo (behind cairosvg).
APT_PACKAGES := libfluidsynth3 libcairo2
PYTEST_ARGS ?=

.PHONY: book test sysdeps venv benchmarks clean

sysdeps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "sheetlab needs the system packages:$$missing (FluidSynth, cairo)."; \
	    echo "apt-get is missing: install them with your package manager (conda: 'conda env create -f environment.yml')."; \
	    exit 1; \
	  fi; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "Installing system packages:$$missing"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) sysdeps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

# The execution cache of jupyter-book keys on the notebooks only; key it on the library too:
# when sheetlab/ changes, the cached executions (and Sphinx's doctrees) are dropped.
book: $(STAMP) sysdeps
	@key=$$(find sheetlab -type f \( -name '*.py' -o -name '*.json' -o -name '*.pt' \) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16); \
	old=$$(cat _build/.sheetlab-key 2>/dev/null || true); \
	if [ "$$key" != "$$old" ]; then \
	  echo "sheetlab sources changed ($$old -> $$key): chapters will be re-executed"; \
	  rm -rf _build/.jupyter_cache _build/.doctrees; \
	fi; \
	$(VENV)/bin/jupyter-book build . -W --keep-going && \
	mkdir -p _build && echo "$$key" > _build/.sheetlab-key

test: $(STAMP) sysdeps
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; \
	exit $$rc

benchmarks: $(STAMP) sysdeps
	$(PY) benchmarks/run.py

clean:
	rm -rf _build
