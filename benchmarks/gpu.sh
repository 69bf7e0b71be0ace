#!/usr/bin/env bash
# One GPU measurement from a bare image with torch, Lightning, pandas, pyarrow and scipy (benchmarks/gpu.py).
# seqrec's other dependencies travel as wheels in .whl/, fetched beforehand on a machine that reaches the package
# registries with `bash benchmarks/gpu.sh --fetch-wheels`; they are installed into a private folder, never over
# the image's torch.
#   bash benchmarks/gpu.sh [--smoke] [--budget-s 450]        (OUT=DIR: where the table and figures go)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Pure-Python or self-contained wheels the image lacks (Python 3.12, manylinux x86_64); --no-deps: each is named.
WHEELS="omegaconf==2.4.0 antlr4-python3-runtime==4.13.2 lightgbm==4.7.0 threadpoolctl==3.8.0 anyascii==0.3.3
rapidfuzz==3.14.6 duckdb==2.0.1 fsspec==2026.9.0"
if [[ "${1:-}" == "--fetch-wheels" ]]; then
  for w in $WHEELS; do
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d .whl "$w"
  done
  ls -la .whl
  exit 0
fi
if ! "$PY" -c "import omegaconf, lightgbm, threadpoolctl, anyascii, rapidfuzz, duckdb, fsspec" 2> /dev/null \
    && compgen -G ".whl/*.whl" > /dev/null; then  # what the image lacks, from the wheels
  site=${TMPDIR:-/tmp}/seqrec-site
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$PY" benchmarks/gpu.py --out "${OUT:-reports/gpu}" "$@"
