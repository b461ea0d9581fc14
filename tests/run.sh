#!/usr/bin/env bash
# The test command (README): installs into .venv, creates a fresh, uniquely named PostgreSQL database on the
# server this machine provides, runs the whole suite on SQLite and PostgreSQL, and drops every database it made.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PG_SERVER=${ODH_PG_SERVER:-postgresql://postgres@127.0.0.1:5432}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work here) and need a CJK font
# for readable screenshots. Installed when missing and we may; in CI a missing browser fails the browser tests.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1 || \
      (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1)) || \
      echo "note: could not install chromium (browser tests will say so)"
  else
    echo "note: /usr/bin/chromium missing; install it (apt-get install chromium fonts-wqy-microhei) for the browser tests"
  fi
fi
if [ "${CI:-}" = "true" ]; then
  export ODH_REQUIRE_BROWSER=1
fi

RUN_DB="odh_test_$(date +%Y%m%d%H%M%S)_$$_${RANDOM}"
export ODH_TEST_POSTGRES_URL="$PG_SERVER/$RUN_DB"

pg_admin() {
  "$VENV/bin/python" - "$PG_SERVER" "$RUN_DB" "$1" <<'PY'
import sys
import psycopg
server, name, action = sys.argv[1:4]
with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=10) as conn:
    if action == "create":
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    else:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)).fetchall()
        for (db,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        print(f"dropped {len(rows)} test database(s) named {name}*")
PY
}

if ! pg_admin create; then
  echo "ERROR: cannot create a test database on $PG_SERVER — the PostgreSQL tests cannot run." >&2
  exit 2
fi
trap 'pg_admin drop || true' EXIT

"$VENV/bin/python" -m pytest "$@"
