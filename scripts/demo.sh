#!/usr/bin/env bash
# The whole job end to end, through the public CLI only (`make demo` runs this after `make up`):
#
#   schema -> synthetic city data -> train + activate v1 per city -> start a worker -> stream part 1
#   -> train v2 for the drifted city (and a new model for a second one) and publish them, not live
#   -> stream part 2 and, while it flows, swap the drifted city with `scorer activate` and the second
#      city with a raw CQL UPDATE of scorer.active_models -> stream the rest (part 3)
#   -> stop the worker with SIGTERM -> report.
#
# Exits non-zero if any step fails or the report finds a lost or failed event or an unseen swap.
# The dev services are left running (stop them with `make down`). Re-runnable: each run uses its own
# topics and consumer group, and publishes new versions (the numbers the commands print are used).
#
# Knobs (environment): DEMO_EVENTS, DEMO_RATE (events/s), DEMO_TRAIN_ROWS, DEMO_SEED, DEMO_DRIFT_CITY,
# DEMO_CQL_CITY, DEMO_DATA_DIR, DEMO_REPORT_DIR, DEMO_WEB_PORT, DEMO_RUN (topic/group suffix), DEMO_MODEL,
# VENV, and the usual SCORER_* settings (SCORER_KEYSPACE, SCORER_CASSANDRA_HOSTS, SCORER_KAFKA, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
BIN="$VENV/bin"
EVENTS=${DEMO_EVENTS:-48000}
RATE=${DEMO_RATE:-2500}
TRAIN_ROWS=${DEMO_TRAIN_ROWS:-2000}
SEED=${DEMO_SEED:-7}
DRIFT_CITY=${DEMO_DRIFT_CITY:-SFO}
CQL_CITY=${DEMO_CQL_CITY:-ATL}
DATA=${DEMO_DATA_DIR:-reports/demo/data}
REPORT=${DEMO_REPORT_DIR:-reports/demo}
PORT=${DEMO_WEB_PORT:-6066}
MODEL=${DEMO_MODEL:-rides}
RUN=${DEMO_RUN:-$(date +%Y%m%d-%H%M%S)}
KEYSPACE=${SCORER_KEYSPACE:-scorer}
CASSANDRA_HOST=${SCORER_CASSANDRA_HOSTS:-127.0.0.1}
CASSANDRA_HOST=${CASSANDRA_HOST%%,*}
CASSANDRA_PORT=${SCORER_CASSANDRA_PORT:-9042}
FEATURES=wait_minutes,distance_km,surge,hour,rating
SPLIT_AT=0.35,0.7
DRIFT_AT=0.25

TOPIC_EVENTS="demo-$RUN-events"
TOPIC_PREDICTIONS="demo-$RUN-predictions"
TOPIC_DLQ="demo-$RUN-dlq"
export SCORER_APP_ID="scorer-demo-$RUN"   # a consumer group of its own: runs never share offsets

START=$(date +%s)
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
die() { printf '\033[1;31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }
# Copy stdin to stdout and to stderr. Not `tee /dev/stderr`: that reopens the file behind fd 2, which
# truncates a log redirected with `>` (make demo > demo.log 2>&1 would lose everything before it).
to_both() { while IFS= read -r line; do printf '%s\n' "$line"; printf '%s\n' "$line" >&2; done; }

[ -x "$BIN/scorer" ] || die "no $BIN/scorer; run 'make demo' (it creates the virtual environment) or set VENV"
[ -x "$BIN/cqlsh" ] || die "no $BIN/cqlsh; reinstall the dev extra: $BIN/pip install -e '.[dev]'"
scorer() { "$BIN/scorer" "$@"; }

# cqlsh against the same Cassandra as scorer (protocol v5). Credentials, if any, come from the environment.
cql() {
  local auth=()
  if [ -n "${SCORER_CASSANDRA_USER:-}" ]; then auth=(-u "$SCORER_CASSANDRA_USER" -p "$SCORER_CASSANDRA_PASSWORD"); fi
  "$BIN/cqlsh" "$CASSANDRA_HOST" "$CASSANDRA_PORT" --protocol-version=5 "${auth[@]}" -e "$1" 2>&1 \
    | { grep -v "^WARNING: cqlsh was built against" || true; }
}
# When the row was really written: WRITETIME(version) in microseconds -> epoch seconds.
writetime() {
  cql "SELECT writetime(version) FROM $KEYSPACE.active_models WHERE model = '$MODEL' AND segment = '$1';" \
    | grep -Eo '[0-9]{16}' | head -n1 | awk '{ printf "%.6f", $1 / 1e6 }'
}
published_version() { sed -n "s|^published $MODEL/$1 version \([0-9][0-9]*\)$|\1|p" | tail -n1; }

WORKER_PID=""
SENDER_PID=""
cleanup() {
  local status=$?
  if [ -n "$SENDER_PID" ] && kill -0 "$SENDER_PID" 2>/dev/null; then kill "$SENDER_PID" 2>/dev/null || true; fi
  if [ -n "$WORKER_PID" ] && kill -0 "$WORKER_PID" 2>/dev/null; then
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    wait "$WORKER_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "worker log: $REPORT/worker.log" >&2
    echo "the dev services are still running; stop them with: make down" >&2
  fi
}
trap cleanup EXIT

mkdir -p "$REPORT"
rm -f "$REPORT/swaps.jsonl" "$REPORT/summary.json" "$REPORT/report.png"

step "schema in keyspace $KEYSPACE"
scorer schema apply

step "synthetic data: $EVENTS ride events over 12 cities, $DRIFT_CITY drifts after ${DRIFT_AT}"
scorer demo-data --out "$DATA" --events "$EVENTS" --train-rows "$TRAIN_ROWS" --seed "$SEED" \
  --drift-city "$DRIFT_CITY" --drift-at "$DRIFT_AT" --retrain-city "$CQL_CITY" --split-at "$SPLIT_AT"
PART1=$(awk -v n="$EVENTS" -v s="${SPLIT_AT%%,*}" 'BEGIN { printf "%d", n * s }')
PART12=$(awk -v n="$EVENTS" -v s="${SPLIT_AT##*,}" 'BEGIN { printf "%d", n * s }')
PART2=$(( PART12 - PART1 ))

step "train v1 for every city and make it live (model '$MODEL')"
scorer train --data "$DATA/train.csv" --model "$MODEL" --segment-col city --target cancelled \
  --features "$FEATURES" --arch logistic --activate --reason "demo $RUN: v1"

step "start a worker (log: $REPORT/worker.log, metrics: http://127.0.0.1:$PORT/metrics)"
"$BIN/python" -c 'import socket, sys; socket.socket().bind(("0.0.0.0", int(sys.argv[1])))' "$PORT" 2>/dev/null \
  || die "port $PORT is taken (another worker?); stop it or pick another with DEMO_WEB_PORT=..."
"$BIN/scorer" worker --input-topic "$TOPIC_EVENTS" --output-topic "$TOPIC_PREDICTIONS" --dlq-topic "$TOPIC_DLQ" \
  --models "$MODEL" --web-port "$PORT" >"$REPORT/worker.log" 2>&1 &
WORKER_PID=$!
ready=""
for _ in $(seq 1 120); do
  kill -0 "$WORKER_PID" 2>/dev/null || die "the worker exited at start; see $REPORT/worker.log"
  page=$(curl -fsS "http://127.0.0.1:$PORT/models" 2>/dev/null || true)
  if grep -q "\"ready\": *true" <<<"$page" && grep -q "\"$DRIFT_CITY\"" <<<"$page"; then ready=1; break; fi
  sleep 0.5
done
[ -n "$ready" ] || die "the worker did not list its models on :$PORT/models within 60 s; see $REPORT/worker.log"
echo "worker $WORKER_PID ready ($(grep -Eo '"versions_loaded": *[0-9]+' <<<"$page" | tr -d '"'); models: http://127.0.0.1:$PORT/models)"

# `scorer send` of a file's rows as events (only the feature columns), at $RATE events/s.
SEND_ARGS=(--model "$MODEL" --segment-col city --id-col id --features "$FEATURES" --topic "$TOPIC_EVENTS" --rate "$RATE")

step "stream part 1 ($PART1 events) to $TOPIC_EVENTS at $RATE events/s"
scorer send --data "$DATA/stream_part1.csv" "${SEND_ARGS[@]}"

step "train v2 for $DRIFT_CITY on its post-drift data, and a boosted model for $CQL_CITY; publish both (not live yet)"
rm -rf "$DATA/v2"
scorer train --data "$DATA/retrain_$DRIFT_CITY.csv" --model "$MODEL" --segment-col city --target cancelled \
  --features "$FEATURES" --arch logistic --out "$DATA/v2/$DRIFT_CITY"
scorer train --data "$DATA/retrain_$CQL_CITY.csv" --model "$MODEL" --segment-col city --target cancelled \
  --features "$FEATURES" --arch gbt --param n_estimators=60 --param max_depth=3 --out "$DATA/v2/$CQL_CITY"
V_DRIFT=$(scorer publish --model "$MODEL" --segment "$DRIFT_CITY" --weights "$(ls "$DATA/v2/$DRIFT_CITY"/*.npz)" \
  | to_both | published_version "$DRIFT_CITY")
V_CQL=$(scorer publish --model "$MODEL" --segment "$CQL_CITY" --weights "$(ls "$DATA/v2/$CQL_CITY"/*.npz)" \
  | to_both | published_version "$CQL_CITY")
[ -n "$V_DRIFT" ] && [ -n "$V_CQL" ] || die "could not read the published version numbers"

step "stream part 2 ($PART2 events, ~$(( PART2 / ${RATE%.*} )) s) and swap two cities while it flows"
"$BIN/scorer" send --data "$DATA/stream_part2.csv" "${SEND_ARGS[@]}" >"$REPORT/send_part2.log" 2>&1 &
SENDER_PID=$!

# The worker's /models page counts the events it has taken in: swap at set points of part 2 as the worker
# sees them, however long the sender takes to start or the worker lags behind on a busy machine.
taken_in() { curl -fsS "http://127.0.0.1:$PORT/models" 2>/dev/null | grep -Eo '"events": *[0-9]+' | grep -Eo '[0-9]+$' || echo 0; }
wait_for_events() {  # wait_for_events N: until the worker has taken in N events (gives up after 30 s without progress)
  local target=$1 last=-1 still=0 seen
  while :; do
    seen=$(taken_in)
    [ "$seen" -ge "$target" ] && return 0
    if [ "$seen" -eq "$last" ]; then still=$(( still + 1 )); else still=0; last=$seen; fi
    [ "$still" -ge 300 ] && { echo "warning: the worker took in no event for 30 s (at $seen of $target)" >&2; return 0; }
    sleep 0.1
  done
}

record_swap() {  # record_swap SEGMENT VERSION METHOD REQUESTED_AT RETURNED_AT
  local written
  written=$(writetime "$1")
  printf '{"model": "%s", "segment": "%s", "version": %s, "method": "%s", "requested_at": %s, "returned_at": %s, "written_at": %s}\n' \
    "$MODEL" "$1" "$2" "$3" "$4" "$5" "${written:-null}" >>"$REPORT/swaps.jsonl"
  echo "swap recorded: $1 -> v$2 by $3, row written at $written"
}

wait_for_events $(( PART1 + PART2 / 5 ))
echo "-- swap 1 (after $(taken_in) events): scorer activate $MODEL $DRIFT_CITY $V_DRIFT"
t=$(now)
scorer activate "$MODEL" "$DRIFT_CITY" "$V_DRIFT" --reason "demo $RUN: retrained after drift"
record_swap "$DRIFT_CITY" "$V_DRIFT" "scorer activate" "$t" "$(now)"
wait_for_events $(( PART1 + PART2 * 3 / 5 ))

SWAP_CQL="UPDATE $KEYSPACE.active_models SET version = $V_CQL WHERE model = '$MODEL' AND segment = '$CQL_CITY';"
echo "-- swap 2 (after $(taken_in) events): a RAW CQL UPDATE with cqlsh, not through scorer:"
echo "   $SWAP_CQL"
t=$(now)
cql "$SWAP_CQL"
record_swap "$CQL_CITY" "$V_CQL" "raw CQL UPDATE" "$t" "$(now)"

sender_status=0
wait "$SENDER_PID" || sender_status=$?
SENDER_PID=""
tail -n 3 "$REPORT/send_part2.log"
[ "$sender_status" -eq 0 ] || die "scorer send (part 2) exited with $sender_status; see $REPORT/send_part2.log"

step "stream the rest ($(( EVENTS - PART12 )) events), both new versions live"
scorer send --data "$DATA/stream_part3.csv" "${SEND_ARGS[@]}"

step "stop the worker cleanly (SIGTERM drains the batch in hand)"
wait_for_events "$EVENTS"   # the whole stream is in the worker's hands
kill -TERM "$WORKER_PID"
worker_status=0
wait "$WORKER_PID" || worker_status=$?
WORKER_PID=""
echo "worker exited with status $worker_status"
[ "$worker_status" -eq 0 ] || die "the worker did not stop cleanly (status $worker_status); see $REPORT/worker.log"

step "report"
scorer demo-report --stream "$DATA/stream.csv" --swaps "$REPORT/swaps.jsonl" --input-topic "$TOPIC_EVENTS" \
  --predictions-topic "$TOPIC_PREDICTIONS" --dlq-topic "$TOPIC_DLQ" --dump "$REPORT/records.jsonl" --out "$REPORT"

echo
echo "demo passed in $(( $(date +%s) - START )) s: $REPORT/summary.json, $REPORT/report.png (worker log $REPORT/worker.log)"
echo "Cassandra and Kafka are still running (dashboards: docker compose --profile monitoring up -d);"
echo "stop them with: make down"
