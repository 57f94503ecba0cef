#!/usr/bin/env bash
# Builds soc._C with the CUDA kernel (sm_80 and sm_90 unless TORCH_CUDA_ARCH_LIST says otherwise) into a
# temporary directory, leaving the development install alone, then loads the built module and checks that
# the CUDA kernels are registered with the dispatcher. Needs nvcc but no GPU.
#   PY=.venv/bin/python   interpreter (torch must be installed)
#   CUDA_HOME=...         toolkit; by default resolved from the nvcc on PATH (which may be a wrapper script)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

if [ -z "${CUDA_HOME:-}" ]; then
  if ! command -v nvcc >/dev/null 2>&1; then
    echo "[check_cuda_build] no nvcc on PATH and no CUDA_HOME" >&2
    exit 1
  fi
  real_nvcc=$(grep -oE '/[^ "]*/bin/nvcc' "$(command -v nvcc)" 2>/dev/null | head -n1 || true)
  [ -n "$real_nvcc" ] || real_nvcc=$(readlink -f "$(command -v nvcc)")
  CUDA_HOME=$(dirname "$(dirname "$real_nvcc")")
fi
export CUDA_HOME

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "[check_cuda_build] CUDA_HOME=$CUDA_HOME, building into $TMP"
FORCE_CUDA=1 SOC_SKIP_CUDA=0 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}" MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" setup.py --quiet build_ext --build-temp "$TMP/temp" --build-lib "$TMP/lib"

SO=$(ls "$TMP"/lib/soc/_C*.so)
# cuobjdump lists the embedded device code; minimal toolkits lack it, triton's wheel ships one.
CUOBJDUMP=$(command -v "$CUDA_HOME/bin/cuobjdump" cuobjdump 2>/dev/null | head -n1 || true)
if [ -z "$CUOBJDUMP" ]; then
  CUOBJDUMP=$("$PY" -c 'import os, triton; print(os.path.dirname(triton.__file__))' 2>/dev/null || true)
  CUOBJDUMP=${CUOBJDUMP:+$CUOBJDUMP/backends/nvidia/bin/cuobjdump}
  [ -x "$CUOBJDUMP" ] || CUOBJDUMP=
fi
if [ -n "$CUOBJDUMP" ]; then
  cubins=$("$CUOBJDUMP" --list-elf "$SO")
  echo "[check_cuda_build] device code in $(basename "$SO"):"
  echo "$cubins" | sed 's/^/  /'
  for arch in $(echo "${TORCH_CUDA_ARCH_LIST:-8.0;9.0}" | tr ';' ' ' | sed 's/+PTX//g' | tr -d '.'); do
    if ! grep -q "sm_${arch}\." <<<"$cubins"; then
      echo "[check_cuda_build] no sm_${arch} code in $SO" >&2
      exit 1
    fi
  done
else
  echo "[check_cuda_build] no cuobjdump found: not listing the device code"
fi

"$PY" - "$SO" <<'PY'
import importlib.util
import sys

import torch

# Loaded under its own file path so that the development soc._C (if any) is not imported alongside it.
spec = importlib.util.spec_from_file_location("_C", sys.argv[1])
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
assert ext.with_cuda(), "soc._C.with_cuda() is False"
for op in ("soc::ms_deform_attn_forward", "soc::ms_deform_attn_backward"):
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, key), f"{op} has no {key} kernel"
print(f"[check_cuda_build] OK: with_cuda()=True, CPU and CUDA kernels registered (GPU visible: "
      f"{torch.cuda.is_available()})")
PY
