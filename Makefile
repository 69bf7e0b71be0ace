# Quick start: `make demo` (install, synthetic data, train, evaluate, predict, validate) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA := data/synthetic/demo
SUBMISSION := submission.csv

.PHONY: install demo test lint clean

install: $(VENV)/.installed

# torch is pinned first so that no dependency can pull a newer (CUDA) build.
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

$(DATA)/interactions.csv: | install
	$(PY) -m seqrec.synth --out $(DATA) --preset demo

RUN := runs/demo

demo: install $(DATA)/interactions.csv
	$(PY) train.py data.dir=$(DATA) preset=demo run.dir=$(RUN)
	$(PY) -m seqrec.evaluate data.dir=$(DATA) run.dir=$(RUN) "eval.models=[popular,segment_popular,relisten,transitions,als,itemknn,sasrec]"
	$(PY) predict.py data.dir=$(DATA) run.dir=$(RUN) submission=$(SUBMISSION)
	$(PY) -m seqrec.validate $(SUBMISSION) data.dir=$(DATA)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check seqrec tests benchmarks train.py predict.py

clean:
	rm -rf reports runs $(SUBMISSION) $(DATA)/.seqrec_cache
