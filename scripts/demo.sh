#!/usr/bin/env bash
# The end-to-end demo: bring the local stack up and show that every part is healthy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
start=$(date +%s)
"$BIN/streaming" dev up
eval "$("$BIN/streaming" dev env)"
echo "--- health" >&2
"$BIN/streaming" health
echo "--- stack" >&2
"$BIN/streaming" dev status
echo "demo finished in $(( $(date +%s) - start ))s; stop the stack with: $BIN/streaming dev down" >&2
