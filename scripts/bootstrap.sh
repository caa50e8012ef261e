#!/usr/bin/env bash
# Installs everything the portal needs on a fresh machine, idempotently:
# the Python 3.11 virtualenv with runtime + dev requirements, running PostgreSQL
# and Redis (started if they are installed but stopped), the database, and (as root)
# Debian's headless Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# Not made here: the `delta-sharing` connector's own virtual environment, which the
# connector tests create on their first run (tests/support/deltasharing.py, ~30 s).

# Headless Chromium for the browser tests (tests/datalake/test_browser.py): Debian's chromium and
# chromium-driver, installed when missing and we are root with apt-get. Elsewhere this is
# skipped, and so are the browser tests (they say why; on CI they fail instead).
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing chromium and chromium-driver (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "bootstrap: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "bootstrap: no chromium and not root with apt-get; the browser tests will be skipped" >&2
  fi
fi

# PostgreSQL and Redis: start them if they are installed locally and not answering.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
fi
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break
  sleep 1
done

# The database named by DATABASE_URL (default: datalake).
.venv/bin/python - <<'PY'
import os, environ, psycopg
url = environ.Env.db_url_config(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datalake"))
admin = dict(host=url["HOST"] or "127.0.0.1", port=url["PORT"] or 5432, user=url["USER"] or "postgres",
             password=url["PASSWORD"] or None, dbname="postgres", autocommit=True)
with psycopg.connect(**admin) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url["NAME"]]).fetchone():
        conn.execute(f'CREATE DATABASE "{url["NAME"]}"')
        print(f"created database {url['NAME']}")
        # A new database is a new audit chain: the checkpoints of a former one would say
        # its requests were all deleted (docs/AUDIT.md). Kept aside, never removed.
        import pathlib, time
        lake = pathlib.Path(os.environ.get("LAKE_ROOT") or "lake")
        marks = pathlib.Path(os.environ.get("AUDIT_CHECKPOINT_ROOT") or lake / "audit" / "checkpoints")
        if marks.is_dir() and any(marks.iterdir()):
            aside = marks.with_name(f"{marks.name}.before-{time.strftime('%Y%m%dT%H%M%S')}")
            marks.rename(aside)
            print(f"audit checkpoints of a former database moved to {aside}")
PY
echo "bootstrap: ok"
