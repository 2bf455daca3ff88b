#!/usr/bin/env bash
# Runs every notebook with nbclient against a fresh `pdx serve` populated by `pdx demo`.
# Usage: notebooks/run_all.sh [path/to/pdx]   (needs: pip install -r notebooks/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")"
PDX_BIN=${1:-${PDX_BIN:-pdx}}
PORT=${PDX_NB_PORT:-8765}
DATA=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$PDX_BIN" --data-dir "$DATA" demo >/dev/null
"$PDX_BIN" --data-dir "$DATA" serve --addr "127.0.0.1:$PORT" >"$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PORT/v1/ledger/public-key" -H "Authorization: Bearer $(cat "$DATA/admin.key")" >/dev/null && break
  sleep 0.1
done
export PDX_URL="http://127.0.0.1:$PORT" PDX_DATA_DIR="$DATA" PDX_BIN
python - 01_enterprise_developer.ipynb 02_trading_platform.ipynb 03_supervisor_audit.ipynb <<'PY'
import sys, nbformat
from nbclient import NotebookClient
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    print("ok", path)
PY
