#!/usr/bin/env bash
# A registry cluster on this machine (issue 15): PostgreSQL, Redis, two app nodes (gunicorn, each with its own
# instance folder and port), nginx in front of them (round-robin, passive health checks) and two workers.
#   deploy/cluster.sh start | stop | status        (make cluster / make cluster-stop)
#   deploy/cluster.sh env a                         the settings of node a (or b), as NAME=value lines
#   deploy/cluster.sh flask a keys rotate           a `flask --app app …` command with node a's settings
# Everything lives under $CLUSTER_DIR (default .cluster/ in the repository): data, logs, pid files, secrets.
# Ports: nginx $CLUSTER_PORT (8080), nodes $NODE_A_PORT / $NODE_B_PORT (5001 / 5002), PostgreSQL $CLUSTER_PG_PORT
# (55432), Redis $CLUSTER_REDIS_PORT (56379). Needs Debian's postgresql, redis-server and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
D=$(realpath -m "${CLUSTER_DIR:-$ROOT/.cluster}")
PORT=${CLUSTER_PORT:-8080}
NODE_A_PORT=${NODE_A_PORT:-5001}
NODE_B_PORT=${NODE_B_PORT:-5002}
PG_PORT=${CLUSTER_PG_PORT:-55432}
REDIS_PORT=${CLUSTER_REDIS_PORT:-56379}
BIN=$ROOT/.venv/bin
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

say() { echo "cluster: $*"; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

secrets() {
  if [ ! -f "$D/secrets.env" ]; then
    umask 077
    "$BIN/python" - > "$D/secrets.env" <<'PY'
import base64, secrets
print(f"SECRET_KEY={secrets.token_hex(32)}")
print(f"SIGNING_KEY_KEK={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}")
print(f"PG_PASSWORD={secrets.token_hex(16)}")
print(f"MIIT_ADMIN_PASSWORD=Miit-{secrets.token_urlsafe(9)}")
PY
  fi
  # shellcheck disable=SC1091
  set -a; . "$D/secrets.env"; set +a
}

# the configuration every node and worker shares (the cluster's, as a production install would set it)
node_env() {
  export DATABASE_URL="postgresql+psycopg://beian:$PG_PASSWORD@127.0.0.1:$PG_PORT/beian"
  export RATELIMIT_STORAGE_URI="redis://127.0.0.1:$REDIS_PORT/0"
  export CACHE_TYPE=RedisCache CACHE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1"
  export FILE_STORAGE=database SIGNING_KEY_STORE=database
  export PUBLIC_BASE_URL="http://127.0.0.1:$PORT" TRUSTED_HOSTS="127.0.0.1,localhost"
  export PROXY_FIX_X_FOR=1  # the client address is nginx's X-Forwarded-For (rate limits, sign-in throttle, audit)
  export IMPORT_LEASE_SECONDS=${IMPORT_LEASE_SECONDS:-20} WORKER_LEASE_SECONDS=${WORKER_LEASE_SECONDS:-20}
  export API_RATE_LIMIT_PER_MINUTE=${API_RATE_LIMIT_PER_MINUTE:-600}
  export BEIAN_INSTANCE_PATH="$D/node-$1"
  export PROMETHEUS_MULTIPROC_DIR="$D/node-$1/metrics"
}

start_postgres() {
  if [ ! -f "$D/pg/PG_VERSION" ]; then
    mkdir -p "$D/pg"
    printf '%s\n' "$PG_PASSWORD" > "$D/pgpass.tmp"
    [ "$(id -u)" -eq 0 ] && chown postgres "$D/pg" "$D/pgpass.tmp" && chmod 711 "$D"
    as_pg "$PG_BIN/initdb" -D "$D/pg" -U beian --pwfile="$D/pgpass.tmp" --auth=scram-sha-256 -E UTF8 \
      --locale=C.UTF-8 >"$D/logs/initdb.log"
    rm -f "$D/pgpass.tmp"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$D/pg" status >/dev/null 2>&1; then
    touch "$D/logs/postgres.log"; [ "$(id -u)" -eq 0 ] && chown postgres "$D/logs/postgres.log"
    as_pg "$PG_BIN/pg_ctl" -D "$D/pg" -l "$D/logs/postgres.log" -w start \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $D/pg -c max_connections=200" >/dev/null
  fi
  export PGPASSWORD=$PG_PASSWORD
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U beian -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'beian'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U beian beian
  fi
  say "PostgreSQL on 127.0.0.1:$PG_PORT (data $D/pg)"
}

start_redis() {
  alive "$D/run/redis.pid" || redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$D/run/redis.pid" --logfile "$D/logs/redis.log" --dir "$D"
  say "Redis on 127.0.0.1:$REDIS_PORT"
}

start_node() {  # $1: a|b, $2: port
  (
    node_env "$1"
    alive "$D/run/node-$1.pid" && exit 0  # (a subshell)
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"; mkdir -p "$PROMETHEUS_MULTIPROC_DIR"  # a new node: its metrics start at 0
    "$BIN/gunicorn" -c deploy/gunicorn.conf.py -w 2 -b "127.0.0.1:$2" --daemon --no-control-socket \
      --pid "$D/run/node-$1.pid" --access-logfile "$D/logs/node-$1.access.log" --error-logfile "$D/logs/node-$1.log" \
      "app:create_app()"
  )
  say "app node $1 on 127.0.0.1:$2 (instance $D/node-$1)"
}

start_worker() {  # $1: a|b
  (
    node_env "$1"
    if ! alive "$D/run/worker-$1.pid"; then
      setsid "$BIN/flask" --app app outbox run --interval 1 >>"$D/logs/worker-$1.log" 2>&1 < /dev/null &
      echo $! > "$D/run/worker-$1.pid"
    fi
  )
  say "worker $1 (log $D/logs/worker-$1.log)"
}

start_nginx() {
  sed -e "s|@PORT@|$PORT|g" -e "s|@NODE_A@|127.0.0.1:$NODE_A_PORT|g" -e "s|@NODE_B@|127.0.0.1:$NODE_B_PORT|g" \
      -e "s|@DIR@|$D/nginx|g" deploy/nginx/cluster.conf.in > "$D/nginx/nginx.conf"
  if alive "$D/nginx/nginx.pid"; then
    nginx -p "$D/nginx" -c "$D/nginx/nginx.conf" -s reload
  else
    nginx -p "$D/nginx" -c "$D/nginx/nginx.conf" 2>>"$D/logs/nginx.log"
  fi
  say "nginx on http://127.0.0.1:$PORT → 127.0.0.1:$NODE_A_PORT, 127.0.0.1:$NODE_B_PORT"
}

ready() {  # /readyz through nginx (Python's urllib: curl may not be installed)
  "$BIN/python" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" \
    "http://127.0.0.1:$PORT/readyz"
}

wait_ready() {
  for _ in $(seq 1 60); do
    if ready >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "not ready after 30 s: see $D/logs/" >&2
  return 1
}

start() {
  mkdir -p "$D/logs" "$D/run" "$D/nginx/logs" "$D/node-a" "$D/node-b"
  [ -x "$BIN/gunicorn" ] || { say "run 'make cluster' (it installs .venv first)" >&2; exit 1; }
  for tool in redis-server nginx; do
    command -v "$tool" >/dev/null || { say "$tool is missing: apt-get install redis-server nginx" >&2; exit 1; }
  done
  [ -x "$PG_BIN/initdb" ] || { say "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
  secrets
  start_postgres
  start_redis
  (node_env a; "$BIN/flask" --app app init) | sed 's/^/cluster: init: /'
  start_node a "$NODE_A_PORT"
  start_node b "$NODE_B_PORT"
  start_worker a
  start_worker b
  start_nginx
  wait_ready
  say "ready: http://127.0.0.1:$PORT — first MIIT account: miit, password: $MIIT_ADMIN_PASSWORD"
  say "stop with: make cluster-stop"
}

stop_pid() {  # $1: pid file; TERM, then KILL after 10 s
  alive "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

stop() {
  [ -d "$D" ] || { say "nothing to stop"; return 0; }
  alive "$D/nginx/nginx.pid" && nginx -p "$D/nginx" -c "$D/nginx/nginx.conf" -s quit || true
  for name in worker-a worker-b node-a node-b redis; do stop_pid "$D/run/$name.pid"; done
  if [ -f "$D/pg/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$D/pg" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$D/pg" -m fast -w stop >/dev/null
  fi
  say "stopped (data kept in $D; remove it for a new cluster)"
}

status() {
  for name in node-a node-b worker-a worker-b redis; do
    if alive "$D/run/$name.pid"; then say "$name running"; else say "$name stopped"; fi
  done
  if alive "$D/nginx/nginx.pid"; then say "nginx running"; else say "nginx stopped"; fi
  ready 2>/dev/null || say "not ready"
}

case "${1:-}" in
  start) start ;;
  env) secrets >/dev/null; node_env "${2:-a}"; env | grep -E '^(DATABASE_URL|SECRET_KEY|SIGNING_KEY_[A-Z_]+|RATELIMIT_STORAGE_URI|CACHE_[A-Z_]+|FILE_STORAGE|PUBLIC_BASE_URL|TRUSTED_HOSTS|PROXY_FIX_X_FOR|[A-Z]+_LEASE_SECONDS|API_RATE_LIMIT_PER_MINUTE|BEIAN_INSTANCE_PATH|PROMETHEUS_MULTIPROC_DIR)=' | sort ;;
  flask) shift; node=${1:-a}; shift || true; secrets >/dev/null; node_env "$node"; exec "$BIN/flask" --app app "$@" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|env NODE|flask NODE ARGS…" >&2; exit 2 ;;
esac
