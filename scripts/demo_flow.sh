#!/usr/bin/env bash
# The replay part of the demo, through the real CLI: a consumer group whose handler has a
# bug dead-letters some events; we snapshot its offsets, reset them (and restore the
# snapshot), then redrive the dead letters to the fixed consumer.
#
# Needs KAFKA_BOOTSTRAP_SERVERS, REGISTRY_URL and DATABASE_URL in the environment
# (scripts/demo.sh sets them from 'streaming dev env'). Every run uses its own topic and
# group (suffix DEMO_RUN_ID, random by default), so the demo can run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
: "${KAFKA_BOOTSTRAP_SERVERS:?set it first: eval \"\$($BIN/streaming dev env)\"}"
: "${REGISTRY_URL:?set it first: eval \"\$($BIN/streaming dev env)\"}"
export LOG_LEVEL="${LOG_LEVEL:-WARNING}" # command output only, no info logs

run_id="${DEMO_RUN_ID:-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}"
topic="demo.orders.$run_id"
group="demo-billing-$run_id"
events=150

step() { echo "--- $*" >&2; }
# Show each command as a user would type it, then run it.
streaming() {
    echo "\$ streaming $*" >&2
    "$BIN/streaming" "$@"
}
billing() {
    echo "\$ python scripts/demo_consumer.py $*" >&2
    "$BIN/python" scripts/demo_consumer.py "$@"
}

step "topics: $topic (3 partitions) with retry and DLQ topics for group $group, and the audit topic"
streaming topics ensure --topic "$topic" --group "$group" --partitions 3 --no-internal
# Resets and redrives are recorded in the audit chain; its topic must exist.
streaming topics ensure --topic audit.events --no-internal

step "produce: $events fake OrderPlaced events"
streaming produce --topic "$topic" --type OrderPlaced --fake "$events" --seed 7

step "consume: billing v1 cannot price TSLA orders; they fail fatally and go to the DLQ"
billing --topic "$topic" --group "$group" --reject TSLA

step "snapshot: remember where $group stands before the fix"
streaming offsets snapshot --group "$group" --name before-fix
streaming offsets list --group "$group"

step "reset: plan a rewind to the earliest offsets, apply it, then restore the snapshot"
streaming offsets reset --group "$group" --topic "$topic" --to-earliest --dry-run
streaming offsets reset --group "$group" --topic "$topic" --to-earliest --execute
streaming offsets reset --group "$group" --topic "$topic" --from-snapshot before-fix --execute

step "redrive: the fix is deployed; move the dead letters back to $topic"
streaming dlq list --topic "$topic" --group "$group"
streaming dlq redrive --topic "$topic" --group "$group" --dry-run
streaming dlq redrive --topic "$topic" --group "$group" --execute

step "result: billing v2 (fixed) gets only the redriven orders, as the restore put the group back at the end"
billing --topic "$topic" --group "$group"
