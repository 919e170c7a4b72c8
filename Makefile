# Set-up and entry points. Every target creates or reuses the environment in .venv/.
#   make demo        set-up + the toy world: make data, build a bank, train with X-Paste, evaluate
#   make test        set-up + the test suite
#   make experiment  set-up + the toy-world experiment (baseline vs copy-paste vs X-Paste, 3 seeds)
#   make ablations   set-up + the toy-world ablations (filter, CLIP threshold, segmenters, pastes,
#                    sampling; 2 seeds)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xpaste-setup
PYTEST_ARGS ?=

.PHONY: setup demo test experiment ablations clean-venv

# torch/torchvision go first and pinned: these exact wheels are on local disk; anything newer
# would pull a multi-GB CUDA build from the index. mmcv is compiled once per machine (cached in
# ~/.cache/xpaste, see tools/setup/build_mmcv.sh).
$(STAMP): requirements.txt requirements/*.txt setup.cfg pyproject.toml tools/setup/build_mmcv.sh
	@echo "[setup] environment in $(VENV)/ (first time on a machine: ~12 min, mostly compiling mmcv)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	bash tools/setup/build_mmcv.sh $(PY)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import mmcv.ops, mmdet, xpaste.datasets; print('[setup] ok: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	bash tools/demo.sh

# pytest's exit status 5 ("no tests collected") is a failure here, not a pass.
test: setup
	@$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# EXPERIMENT_ARGS: "--jobs 2" runs two trainings at once (on 2 cores ~10 % more runs per hour)
EXPERIMENT_ARGS ?= --jobs 2
experiment: setup
	$(PY) tools/experiments/toy_experiment.py $(EXPERIMENT_ARGS)

ablations: setup
	$(PY) tools/experiments/toy_experiment.py --ablations --seeds 0 1 $(EXPERIMENT_ARGS)

clean-venv:
	rm -rf $(VENV)
