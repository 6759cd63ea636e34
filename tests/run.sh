#!/usr/bin/env bash
# The one command that runs the tests on a fresh machine of this kind:
#   bash tests/run.sh [pytest args...]
# It creates .venv (if missing) with the project and its dev extras, .venv-mlflow (if missing)
# with the MLflow server the registry tests start, installs the Debian
# `prometheus` package when it is missing and we are root, creates a scratch PostgreSQL database
# on 127.0.0.1:5432 (unless CANARY_ANALYZER_TEST_DATABASE_URL is already set), runs pytest and
# drops the scratch database afterwards.
#
# The suite runs on CANARY_TEST_WORKERS pytest-xdist workers (default 2, one per core of the
# 2-core CI machine; 0 runs it in this process, serially). Each worker builds its own template
# database and its own session fixtures; every test already gets a scratch database of its own
# and free ports, so the workers never share state.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CANARY_ANALYZER_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
"$VENV/bin/pip" install --quiet -e '.[dev]'

if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y --no-install-recommends prometheus >/dev/null; })
fi

# MLflow for the registry tests (tests/mlflow_server.py): heavy (~850 MB) and not a dependency
# of the service, so it gets a virtualenv of its own. CANARY_TEST_MLFLOW names another one.
if [ -z "${CANARY_TEST_MLFLOW:-}" ] && [ ! -x .venv-mlflow/bin/mlflow ]; then
  python3 -m venv .venv-mlflow
  .venv-mlflow/bin/pip install --quiet --upgrade pip
  .venv-mlflow/bin/pip install --quiet -r tests/requirements-mlflow.txt
fi

PGHOST_ADDR=${PGHOST_ADDR:-127.0.0.1}
if [ -z "${CANARY_ANALYZER_TEST_DATABASE_URL:-}" ]; then
  SCRATCH="ca_run_$(date +%s)_$$"
  if psql -h "$PGHOST_ADDR" -U postgres -d test -qc "CREATE DATABASE $SCRATCH" >/dev/null 2>&1; then
    trap 'psql -h "$PGHOST_ADDR" -U postgres -d test -qc "DROP DATABASE IF EXISTS $SCRATCH WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
    export CANARY_ANALYZER_TEST_DATABASE_URL="postgresql+psycopg://postgres@$PGHOST_ADDR:5432/$SCRATCH"
  else
    echo "note: no PostgreSQL at $PGHOST_ADDR:5432; PostgreSQL tests will be skipped (they fail under CI=1)" >&2
  fi
fi

WORKERS=${CANARY_TEST_WORKERS:-2}
XDIST=()
if [ "$WORKERS" != 0 ]; then
  XDIST=(-n "$WORKERS")
fi
"$VENV/bin/python" -m pytest "${XDIST[@]}" "$@"
