#!/usr/bin/env bash
# The end-to-end demo: bring the local stack up, show that every part is healthy, then
# a snapshot, a reset and a redrive on a consumer group (scripts/demo_flow.sh), then the
# platform document's TradingService: login, an order through the outbox, its consumer
# and the audit chain (examples/trading_service.py).
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
bash scripts/demo_flow.sh
echo "--- the platform document's TradingService (examples/trading_service.py)" >&2
LOG_LEVEL="${LOG_LEVEL:-WARNING}" "$BIN/python" examples/trading_service.py
echo "demo finished in $(( $(date +%s) - start ))s; stop the stack with: $BIN/streaming dev down" >&2
