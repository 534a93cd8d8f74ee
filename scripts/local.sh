#!/usr/bin/env bash
# The lab as local processes, for machines where no Docker engine answers.
# Called by scripts/lab.sh (which has loaded .env); same verbs, same ports, same pipeline.
#
#   MLflow server   .venv's mlflow, SQLite in .lab/mlflow.db, artifacts proxied to .lab/artifacts
#   serving-*       gunicorn processes, one per alias, on STAGING_PORT and PRODUCTION_PORT
#   jobs            python -m trainer / gatekeeper / locust from .venv
#
# Each server runs under scripts/supervise.py (restarts on crash); its PID is recorded in
# .lab/run/<name>.pid, and `down` stops exactly those PIDs, never processes found by name.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LAB_DIR="$ROOT/.lab"
RUN_DIR="$LAB_DIR/run"
LOG_DIR="$LAB_DIR/logs"
PY="$ROOT/.venv/bin/python"
SERVICES="mlflow serving-staging serving-production"

log() { printf '\033[1m[lab:local]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[lab:local] error:\033[0m %s\n' "$*" >&2; exit 2; }

host=${LAB_BIND:-127.0.0.1}
[ "$host" = 0.0.0.0 ] && client_host=127.0.0.1 || client_host=$host
MLFLOW_URL="http://$client_host:$MLFLOW_PORT"

export MLFLOW_TRACKING_URI="$MLFLOW_URL"
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false  # ~6 job-runner processes the lab never uses
export GATE_REGISTRY_URL=""               # no image registry in local mode
export GATE_REPORT_DIR="$ROOT/reports/gate"
export PYTHONPATH="$ROOT/training:$ROOT/gatekeeper:$ROOT/serving:$ROOT/loadtests"

banner() {
  cat >&2 <<EOF
[lab:local] LOCAL MODE: the lab runs as processes on this machine, without Docker.
[lab:local]   MLflow on SQLite and a local artifact folder (.lab/), servers under gunicorn.
[lab:local]   Left out: Postgres, the S3 store, the image registry (no images are built or
[lab:local]   promoted: only model aliases move), container isolation.
EOF
}

port_of() {
  case "$1" in
    mlflow) echo "$MLFLOW_PORT" ;;
    serving-staging) echo "$STAGING_PORT" ;;
    serving-production) echo "$PRODUCTION_PORT" ;;
  esac
}

# The recorded PID, if that process is alive and is still our supervisor for $1.
running_pid() {
  local name=$1 pidfile="$RUN_DIR/$1.pid" pid cmd
  [ -f "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' < "$pidfile")
  [ -n "$pid" ] || return 1
  cmd=$(ps -p "$pid" -o command= 2>/dev/null) || return 1
  case "$cmd" in *supervise.py*"$RUN_DIR/$name.pid"*) echo "$pid" ;; *) return 1 ;; esac
}

clear_stale() {
  local name=$1 pidfile="$RUN_DIR/$1.pid"
  if [ -f "$pidfile" ] && ! running_pid "$name" >/dev/null; then
    log "removing stale PID file for $name (process $(cat "$pidfile") is gone)"
    rm -f "$pidfile"
  fi
}

port_taken() { (exec 3<>"/dev/tcp/$client_host/$1") 2>/dev/null; }

start() {
  local name=$1; shift
  clear_stale "$name"
  if running_pid "$name" >/dev/null; then
    log "$name already running (PID $(running_pid "$name"))"
    return 0
  fi
  local port
  port=$(port_of "$name")
  if port_taken "$port"; then
    die "port $port for $name is already in use by another program: stop it, or set a free port in .env"
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  nohup "$PY" "$ROOT/scripts/supervise.py" --pidfile "$RUN_DIR/$name.pid" \
    --log "$LOG_DIR/$name.log" -- "$@" >/dev/null 2>&1 &
  log "started $name (log: .lab/logs/$name.log)"
}

# Wait for an HTTP endpoint; fail with the log's tail instead of hanging.
wait_http() {
  local name=$1 url=$2 timeout=${3:-120} i=0
  while [ "$i" -lt "$timeout" ]; do
    if "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    if [ "$i" -gt 3 ] && ! running_pid "$name" >/dev/null; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name stopped during start-up (log above)"
    fi
    sleep 1
    i=$((i + 1))
  done
  tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  die "$name did not answer $url within ${timeout}s (log above)"
}

start_mlflow() {
  mkdir -p "$LAB_DIR/artifacts"
  start mlflow "$ROOT/.venv/bin/mlflow" server \
    --backend-store-uri "sqlite:///$LAB_DIR/mlflow.db" \
    --artifacts-destination "$LAB_DIR/artifacts" \
    --host "$host" --port "$MLFLOW_PORT" --workers 1
  wait_http mlflow "$MLFLOW_URL/health" 180
}

serving_up() {
  local alias=$1 port
  port=$(port_of "serving-$alias")
  SERVING_MODEL_ALIAS="$alias" GUNICORN_BIND="$host:$port" \
    PROMETHEUS_MULTIPROC_DIR="$LAB_DIR/metrics-$alias" \
    start "serving-$alias" "$ROOT/.venv/bin/gunicorn" -c "$ROOT/serving/gunicorn.conf.py" \
    'serving.app:create_app()'
  wait_http "serving-$alias" "http://$client_host:$port/ready" 180
}

job() { "$PY" -m "$@"; }
gatekeeper() { job gatekeeper "$@"; }

smoke() {
  local alias=$1 port
  port=$(port_of "serving-$alias")
  gatekeeper smoke --url "http://$client_host:$port" --alias "$alias"
}

stop_all() {
  local name pid i stopped=0
  for name in $SERVICES; do
    clear_stale "$name"
    if pid=$(running_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true  # it may have exited since we looked
      for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
      done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name (PID $pid) did not stop in 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$RUN_DIR/$name.pid"
      log "stopped $name (PID $pid)"
      stopped=1
    fi
  done
  [ "$stopped" = 1 ] || log "nothing was running"
}

print_urls() { bash "$ROOT/scripts/urls.sh" local; }

up() {
  banner
  [ -x "$PY" ] || { log "creating the virtual environment (.venv)"; make --no-print-directory venv; }
  mkdir -p "$ROOT/reports/gate" "$ROOT/reports/load"
  local name
  for name in $SERVICES; do  # preflight: refuse before starting anything
    clear_stale "$name"
    if ! running_pid "$name" >/dev/null && port_taken "$(port_of "$name")"; then
      die "port $(port_of "$name") for $name is already in use by another program: stop it, or set a free port in .env"
    fi
  done
  start_mlflow
  local production
  production=$(gatekeeper status --version-of production)
  if [ -z "$production" ]; then
    log "no production model yet: running the bootstrap pipeline (train → gate → staging → smoke → production)"
    job trainer
    gatekeeper gate
    gatekeeper promote --to staging
    serving_up staging
    smoke staging
    gatekeeper promote --to production
    serving_up production
    smoke production
  else
    log "production model found (version $production): starting the model servers"
    serving_up staging
    serving_up production
  fi
  echo local > "$LAB_DIR/mode"
  print_urls
}

ps_() {
  local name pid
  printf '%-20s %-8s %-7s %s\n' SERVICE PID PORT STATE
  for name in $SERVICES; do
    if pid=$(running_pid "$name"); then
      printf '%-20s %-8s %-7s %s\n' "$name" "$pid" "$(port_of "$name")" running
    else
      printf '%-20s %-8s %-7s %s\n' "$name" - "$(port_of "$name")" stopped
    fi
  done
}

cmd=${1:-help}
case "$cmd" in
  up) up ;;
  down) stop_all; rm -f "$LAB_DIR/mode"; log "stopped; runs and models kept in .lab/ (make clean removes them)" ;;
  restart) stop_all; up ;;
  clean)
    if [ "${FORCE:-0}" != 1 ]; then
      [ -t 0 ] || die "make clean deletes every run and model: run it in a terminal or with FORCE=1"
      read -r -p "Delete the local lab's data in .lab/ (every run and model)? [y/N] " answer
      case "$answer" in y|Y|yes) ;; *) log "nothing deleted"; exit 0 ;; esac
    fi
    stop_all
    rm -rf "$LAB_DIR" "$ROOT/reports"
    log "local data removed" ;;
  ps) ps_ ;;
  logs)
    for name in ${SERVICE:-$SERVICES}; do
      echo "==> .lab/logs/$name.log <=="
      tail -n 100 "$LOG_DIR/$name.log" 2>/dev/null || echo "(no log)"
    done ;;
  doctor)
    banner
    "${PYTHON:-python3}" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ needed")' ||
      die "local mode needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
    log "Python ok; ports: $MLFLOW_PORT $STAGING_PORT $PRODUCTION_PORT" ;;
  build) log "local mode builds no images (nothing to do)" ;;
  train) job trainer ;;
  gate) mkdir -p "$ROOT/reports/gate"; gatekeeper gate ;;
  promote) to=${TO:-staging}; gatekeeper promote --to "$to"; smoke "$to" ;;
  rollback) gatekeeper rollback; smoke production ;;
  status) gatekeeper status ;;
  smoke) smoke "${ALIAS:-staging}" ;;
  load)
    mkdir -p "$ROOT/reports/load"
    target=${LOAD_ALIAS:-staging}
    LOAD_REPORT_DIR="$ROOT/reports/load" "$ROOT/.venv/bin/locust" \
      --config "$ROOT/loadtests/locust.conf" --host "http://$client_host:$(port_of "serving-$target")" \
      --csv "$ROOT/reports/load/locust" --html "$ROOT/reports/load/locust.html" ;;
  urls) print_urls ;;
  *) die "unknown command '$cmd' (see make help)" ;;
esac
