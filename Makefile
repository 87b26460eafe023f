# The two commands the README promises on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test test-portable lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools

# llama-cpp-python compiles llama.cpp on first install (about 6 minutes on 2 cores); pip caches the
# wheel. scripts/install_llama.py runs that install first and shows the compile's progress.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) scripts/install_llama.py
	$(PIP) install -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) scripts/install_llama.py
	$(PIP) install -e '.[test]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(VENV)/bin/genlab serve   # the studio and the OpenAI-compatible API at http://127.0.0.1:8000

test: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy   # core and the gate (pyproject.toml's tool.mypy); about 10 s
	$(VENV)/bin/pytest

# The suite once more with llama.cpp built for no particular CPU (GGML_NATIVE=OFF) in its own venv:
# floating-point paths then differ from the native build, so a test that depends on one CPU's sampled
# tokens fails here first, not on the next machine. The build is not cached (--no-cache-dir).
PORTABLE := .venv-portable
test-portable:
	$(PYTHON) -m venv $(PORTABLE)
	$(PORTABLE)/bin/pip install --quiet --upgrade pip wheel setuptools
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PORTABLE)/bin/pip install --no-cache-dir 'llama-cpp-python[server]==0.3.36'
	$(PORTABLE)/bin/pip install -e '.[test]'
	$(PORTABLE)/bin/pytest

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check --fix src tests bench scripts
	$(VENV)/bin/ruff format src tests bench scripts

bench: $(STAMP_TEST)
	$(PIP) install -e '.[bench]'
	$(PY) bench/llm_decode.py
	$(PY) bench/structured.py
	$(PY) bench/chat.py
	$(PY) bench/speech.py
	$(PY) bench/embeddings.py
	$(PY) bench/contention.py
	$(PY) bench/train_text.py
	$(PY) bench/serve_load.py
	$(PY) bench/image_families.py
	$(PY) bench/audio_families.py
	$(PY) bench/watermark.py
	$(PY) bench/review_load.py
	$(PY) bench/review_soak.py
	$(PY) bench/apps.py
	$(PY) bench/compare.py

clean:
	rm -rf $(VENV) $(PORTABLE) .pytest_cache .ruff_cache
