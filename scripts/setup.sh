#!/usr/bin/env bash
# Create .venv and install everything mirl needs. Idempotent: a second run takes seconds.
# Order matters: the CPU build of torch goes in first, so the torch range in pyproject.toml
# is already satisfied and pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WIDGET_JS_VERSION=1.0.7
ORT_WEB_VERSION=1.30.0   # onnxruntime-web for `mirl export --format web`; kept equal to mirl/export/web.py by a test

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC (CPU build where available)"
  $pip install -q "$TORCH_SPEC"
fi
# Editable install of the project with its test tools and the ONNX export (onnx, onnxscript,
# onnxruntime); fast when everything is present.
$pip install -q -e '.[test,onnx]'
# Packages that ship real photos for the built-in corpus; never imported, read by file path.
for pkg in sporco mahotas imgaug; do
  "$VENV/bin/python" - "$pkg" <<'PYEOF' || $pip install -q --no-deps "$pkg"
import importlib.util, sys
sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)
PYEOF
done

# Widget renderer for offline HTML reports, from the npm registry (not committed).
vendor=mirl/_vendor
if [ ! -s "$vendor/embed.js" ]; then
  if command -v npm >/dev/null; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack -q "@jupyter-widgets/html-manager@$WIDGET_JS_VERSION" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$vendor"
    cp "$tmp/package/dist/embed.js" "$vendor/embed.js.tmp" && mv "$vendor/embed.js.tmp" "$vendor/embed.js"
    cp "$tmp/package/LICENSE" "$vendor/LICENSE.html-manager" 2>/dev/null || true
    rm -rf "$tmp"
  else
    echo "setup: npm not found; HTML reports will be exported without interactive widgets" >&2
  fi
fi

# onnxruntime-web for the web export, from the npm registry (not committed): only the three files
# the WebAssembly backend needs. Refetched when the pinned version changes.
ort_dir=$vendor/onnxruntime-web
if ! grep -qs "\"version\": \"$ORT_WEB_VERSION\"" "$ort_dir/package.json" || [ ! -s "$ort_dir/ort-wasm-simd-threaded.wasm" ]; then
  if command -v npm >/dev/null; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack -q "onnxruntime-web@$ORT_WEB_VERSION" >/dev/null && tar xzf ./*.tgz); then
      mkdir -p "$tmp/out"
      for f in ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm; do cp "$tmp/package/dist/$f" "$tmp/out/"; done
      cp "$tmp/package/package.json" "$tmp/out/package.json"   # version and licence (MIT)
      mkdir -p "$vendor" && rm -rf "$ort_dir" && mv "$tmp/out" "$ort_dir"
    else
      echo "setup: onnxruntime-web $ORT_WEB_VERSION could not be fetched; mirl export --format web will say so" >&2
    fi
    rm -rf "$tmp"
  else
    echo "setup: npm not found; mirl export --format web needs onnxruntime-web (its tests are skipped)" >&2
  fi
fi

# Chromium for the browser tests (Debian package; the tests skip with a reason where it is absent).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
    || echo "setup: chromium could not be installed; browser tests will be skipped" >&2
fi
# A single-node SLURM with accounting for the cluster tests (tests/study/test_launch_slurm.py starts and stops it).
if ! command -v slurmctld >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian slurm-wlm, munge, slurmdbd and mariadb-server for the SLURM tests"
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null 2>&1 \
   || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null)) \
    || echo "setup: SLURM could not be installed; the SLURM tests will be skipped" >&2
fi
echo "setup: done ($(du -sh "$VENV" | cut -f1) in $VENV)"
