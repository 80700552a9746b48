# Two commands on a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The virtual environment is reused only while it was built from exactly these files.
ENV_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.built-from-$(ENV_HASH)

export CINEDEX_HOME ?= $(CURDIR)/.cinedex
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup demo ui test test-fast clean

help:
	@echo "make demo   set up, build the sample film, index it with the Airflow DAG, run example searches"
	@echo "make ui     set up and start Airflow here with the cinedex page (Ctrl-C stops it)"
	@echo "make test   set up and run the whole test suite"
	@echo "make test-fast   the tests that need no services, browser or whole DAG runs (a few minutes)"

$(STAMP): requirements.txt pyproject.toml
	@scripts/check-system.sh
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	@# Bytecode now, once: otherwise every process (each Airflow task, worker and test) compiles its imports again.
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@# The sentence embedder's and the voice encoder's one-time ONNX exports, so no search or task waits for them.
	$(PY) -c "from cinedex.index.embedder import load_model; load_model('all-MiniLM-L6-v2')"
	$(PY) -c "from cinedex.pipeline.voice_encoder import load_voice_encoder; load_voice_encoder()"
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cinedex sample-film
	@# The vision model's weights (8 GB) come from a model hub and want a GPU: the demo indexes speech and shots
	@# unless CINEDEX_VISION_MODEL names a model.
	CINEDEX_VISION_MODEL=$${CINEDEX_VISION_MODEL:-none} $(VENV)/bin/cinedex index "$(CINEDEX_HOME)/sample/sample_film.mp4"
	@for query in "originally from Chicago" "what do they call her down in Texas" "greeting on the telephone"; do \
		echo; echo "\$$ cinedex search \"$$query\" --limit 3"; \
		$(VENV)/bin/cinedex search "$$query" --limit 3 || exit 1; \
	done

ui: $(STAMP)
	$(VENV)/bin/cinedex ui $(if $(PORT),--port $(PORT))

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not services and not browser and not slow"

clean:
	rm -rf $(VENV) .cinedex
