#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server from the machine's binaries, on a free
# loopback port, as the `postgres` user (the server refuses to run as root).
#   scripts/pg.sh start DIR   -> prints the SQLAlchemy URL of database "safepref"
#   scripts/pg.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}
pgbin=$(dirname "$(readlink -f "$(command -v pg_ctl || echo /usr/lib/postgresql/15/bin/pg_ctl)")")

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1
    # Durability settings are relaxed for throwaway test data only.
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=${PG_FSYNC:-off} -c synchronous_commit=${PG_FSYNC:-off} -c full_page_writes=${PG_FSYNC:-off} -c shared_buffers=256MB" >/dev/null
    as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres safepref
    echo "$port" >"$dir/port"
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/safepref"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
