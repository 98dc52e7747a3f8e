#!/usr/bin/env bash
# LocalStack for the integration tests: start | stop | status. Idempotent.
#
# With a running Docker engine: the pinned LocalStack image. Without one: LocalStack on this
# host in its own Python 3.13 venv (.venv-localstack) with our plugins (tools/localstack_executor):
# Lambda functions run as local processes with the project venv's Python, and DynamoDB is
# served by a moto server on loopback (LocalStack's DynamoDB needs a download). A test moves the
# functions' clock forward by writing milliseconds to $STATE/lambda-clock-offset-ms (see
# tools/localstack_executor/paypipe_localstack/bootstrap.py); each start clears it.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${LOCALSTACK_PORT:-4566}
MOTO_PORT=${MOTO_PORT:-4567}
IMAGE=localstack/localstack:4.14
CONTAINER=paypipe-localstack
STATE=.localstack
CLOCK_FILE=$STATE/lambda-clock-offset-ms
LS_VENV=.venv-localstack
PROJECT_PY=${VENV:-.venv}/bin/python
HEALTH_URL=http://127.0.0.1:$PORT/_localstack/health
START_DEADLINE=${LOCALSTACK_START_DEADLINE:-120}
# An idle queue's event source mapping backs off up to 10 s between polls by default: a record then
# waits that long at each step. 1 s keeps a payment's trip through the steps within seconds.
ESM_POLL_BACKOFF=LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC=1
# After a batch LocalStack's one poller per mapping waits 1 s before polling again (AWS polls on at
# once): with a backlog that caps each step at a batch per (invocation + 1 s). Poll on at once.
ESM_POLL_INTERVAL=LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC=0
LS_PINS=("localstack-core[runtime]==4.14.0" "cbor2<5.7" "cryptography<44" "pyopenssl==24.2.1" "service-identity")

healthy() { curl -fsS --max-time 2 "$HEALTH_URL" >/dev/null 2>&1; }
docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
moto_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; }

is_python313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }

find_python313() {
  local candidate
  # pyenv shims exist for versions that are not active: run each candidate to be sure.
  for candidate in "${PYTHON313:-}" python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python; do
    if [ -n "$candidate" ] && is_python313 "$candidate"; then command -v "$candidate"; return; fi
  done
  echo "LocalStack on the host needs Python 3.13 (set PYTHON313=...) or a Docker engine" >&2
  return 1
}

# (Re)install the LocalStack venv when the pins or our plugins changed.
ensure_venv() {
  local stamp
  stamp=$( (printf '%s\n' "${LS_PINS[@]}"; cat tools/localstack_executor/pyproject.toml \
    tools/localstack_executor/paypipe_localstack/*.py) | sha256sum | cut -c1-16)
  if [ -f "$LS_VENV/.installed" ] && [ "$(cat "$LS_VENV/.installed")" = "$stamp" ]; then return; fi
  echo "installing LocalStack into $LS_VENV"
  [ -x "$LS_VENV/bin/python" ] || "$(find_python313)" -m venv "$LS_VENV"
  "$LS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${LS_PINS[@]}"
  "$LS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    ./tools/localstack_executor
  echo "$stamp" >"$LS_VENV/.installed"
}

wait_healthy() {
  local deadline=$((SECONDS + START_DEADLINE))
  until healthy; do
    if [ $SECONDS -ge $deadline ]; then
      echo "LocalStack not healthy after ${START_DEADLINE}s; log: $1" >&2
      tail -n 30 "$1" >&2 || true
      return 1
    fi
    if [ -n "${2:-}" ] && ! alive "$2"; then
      echo "LocalStack exited; log: $1" >&2
      tail -n 30 "$1" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

start_docker() {
  docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  docker run -d --name "$CONTAINER" -p "127.0.0.1:$PORT:4566" -e "$ESM_POLL_BACKOFF" -e "$ESM_POLL_INTERVAL" \
    -v /var/run/docker.sock:/var/run/docker.sock "$IMAGE" >/dev/null
  echo docker >"$STATE/mode"
  docker logs -f "$CONTAINER" >"$STATE/localstack.log" 2>&1 &
  wait_healthy "$STATE/localstack.log"
}

start_host() {
  ensure_venv
  [ -x "$PROJECT_PY" ] || { echo "$PROJECT_PY missing: run make first" >&2; return 1; }
  mkdir -p "$STATE/lambda"
  rm -f "$CLOCK_FILE"
  if ! moto_healthy; then
    stop_group "$STATE/moto.pid"
    # One request at a time, with the project's moto patches (see the script's docstring).
    MOTO_ACCOUNT_ID=000000000000 PYTHONPATH="$PWD/src" setsid "$PROJECT_PY" scripts/moto_dynamodb_server.py \
      --host 127.0.0.1 --port "$MOTO_PORT" >"$STATE/moto.log" 2>&1 </dev/null &
    echo $! >"$STATE/moto.pid"
  fi
  # No DNS server, no telemetry, no downloads: nothing leaves loopback.
  env "$ESM_POLL_BACKOFF" "$ESM_POLL_INTERVAL" GATEWAY_LISTEN="127.0.0.1:$PORT" LOCALSTACK_HOST="127.0.0.1:$PORT" SQS_ENDPOINT_STRATEGY=path \
    DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 LOCALSTACK_VOLUME_DIR="$PWD/$STATE/volume" \
    LAMBDA_RUNTIME_EXECUTOR=local-process PAYPIPE_LAMBDA_PYTHON="$PWD/$PROJECT_PY" \
    PAYPIPE_LAMBDA_LOG_DIR="$PWD/$STATE/lambda" PAYPIPE_LAMBDA_CLOCK_FILE="$PWD/$CLOCK_FILE" \
    PAYPIPE_LAMBDA_DYNAMODB_ENDPOINT="http://127.0.0.1:$MOTO_PORT" \
    PROVIDER_OVERRIDE_DYNAMODB=moto_server PAYPIPE_DYNAMODB_BACKEND_URL="http://127.0.0.1:$MOTO_PORT" \
    setsid "$LS_VENV/bin/python" -m localstack.runtime.main >"$STATE/localstack.log" 2>&1 </dev/null &
  echo $! >"$STATE/localstack.pid"
  echo host >"$STATE/mode"
  wait_healthy "$STATE/localstack.log" "$STATE/localstack.pid"
  local deadline=$((SECONDS + 30))
  until moto_healthy; do
    [ $SECONDS -lt $deadline ] || { echo "moto server not answering; log: $STATE/moto.log" >&2; return 1; }
    sleep 0.2
  done
}

# Stop a process group started above (setsid: the group id is the pid).
stop_group() {
  local pidfile=$1 pid deadline
  if alive "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_start() {
  mkdir -p "$STATE"
  if healthy; then echo "LocalStack already running on :$PORT"; return; fi
  local started=$SECONDS
  if docker_engine; then start_docker; else start_host; fi
  echo "LocalStack ($(cat "$STATE/mode")) ready on :$PORT in $((SECONDS - started))s"
}

cmd_stop() {
  if [ "$(cat "$STATE/mode" 2>/dev/null)" = docker ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
  stop_group "$STATE/localstack.pid"
  stop_group "$STATE/moto.pid"
  rm -f "$STATE/mode"
  echo "LocalStack stopped"
}

cmd_status() {
  if healthy; then
    echo "LocalStack running ($(cat "$STATE/mode" 2>/dev/null || echo external)) on :$PORT"
    if alive "$STATE/moto.pid"; then echo "moto server (DynamoDB) running on :$MOTO_PORT"; fi
  else
    echo "LocalStack not running"; return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
