#!/usr/bin/env bash
# Real local services for the tests, on loopback: MariaDB, FerretDB (MongoDB wire) and a Prefect server
# with a process worker. Usage: hack/services.sh up | down [--purge] | status
# `up` is idempotent (a second run starts nothing) and writes $LUME_STATE/services.env for the tests.
source "$(dirname "$0")/lib.sh"

SERVICES_DIR=$LUME_STATE/services
SERVICES_ENV=$LUME_STATE/services.env
# The ports are the contract with the tests; overriding them runs a second, separate set of services.
MYSQL_PORT=${LUME_SERVICES_MYSQL_PORT:-13306} MYSQL_USER=lume MYSQL_PASSWORD=lume MYSQL_DATABASE=lume_test
MONGODB_PORT=${LUME_SERVICES_MONGODB_PORT:-27018}
PREFECT_PORT=${LUME_SERVICES_PREFECT_PORT:-14200} WORK_POOL=lume-test
FERRETDB_VERSION=v1.24.2
FERRETDB_BIN=$LUME_CACHE/bin/ferretdb-$FERRETDB_VERSION
READY_TIMEOUT=${LUME_SERVICES_READY_TIMEOUT:-90}
# Marks the processes we start (read back from /proc/PID/environ), as lume_platform.local does.
MANAGED_MARKER=LUME_MANAGED_PROCESS

MARIADB_DIR=$SERVICES_DIR/mariadb
FERRETDB_DIR=$SERVICES_DIR/ferretdb
PREFECT_STATE=$SERVICES_DIR/prefect

# A unix socket path must fit in 108 bytes; a deep checkout falls back to a per-checkout path in /tmp.
mariadb_socket() {
  local sock=$MARIADB_DIR/mysqld.sock
  if [ ${#sock} -gt 100 ]; then
    sock=/tmp/lume-mariadb-$(printf '%s' "$MARIADB_DIR" | sha256sum | cut -c1-12).sock
  fi
  printf '%s' "$sock"
}

# local.py run as a file with -P (no script dir on sys.path), not `-m lume_platform.local`: importing the
# package loads the whole library, which costs seconds on every warm `up`; local.py needs only httpx.
local_py() {
  "$VENV/bin/python" -P "$ROOT/lume_platform/local.py" "$@"
}

local_platform() {
  local_py "$@" --port "$PREFECT_PORT" --pool "$WORK_POOL" \
    --state "$PREFECT_STATE" --cwd "$ROOT" --no-ui
}

# pid_alive NAME BINARY: the pid recorded for NAME if it still runs BINARY (guards against reused pids).
pid_alive() {
  local pidfile=$SERVICES_DIR/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  grep -q "^[^ ]* [^ ]* [RSDIT]" "/proc/$pid/stat" 2>/dev/null || return 1 # zombies are not alive
  printf '%s' "$pid"
}

# stop_pid PID: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
  sleep 0.5
}

# stop_leftover NAME PORT: stop the process on PORT if it is our NAME from an earlier run whose pid
# file is lost (state dir removed, another checkout). Fails, naming the holder, if PORT is taken by
# anything else; succeeds when PORT is free.
stop_leftover() {
  local name=$1 port=$2 owner pid marker cmd
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
  owner=$(local_py port-owner --port "$port" || true)
  read -r pid marker cmd <<<"$owner"
  if [ -n "${pid:-}" ] && [ "$marker" = "$name" ]; then
    log "stopping leftover $name (pid $pid) on port $port"
    stop_pid "$pid"
    return 0
  fi
  HOLDER="${pid:+pid $pid ($cmd)}${pid:-an unknown process}"
  return 1
}

# free_port NAME PORT: make sure nothing holds PORT before NAME starts there.
free_port() {
  stop_leftover "$1" "$2" || die "cannot start $1: 127.0.0.1:$2 is already used by $HOLDER"
}

# answers_within SECONDS CMD...: poll CMD until it succeeds (0) or SECONDS pass (1).
answers_within() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# wait_until NAME LOG CMD...: poll CMD until it succeeds, or fail with the tail of LOG.
wait_until() {
  local name=$1 logfile=$2
  shift 2
  if ! answers_within "$READY_TIMEOUT" "$@"; then
    tail -n 40 "$logfile" >&2 || true
    die "$name did not answer within ${READY_TIMEOUT}s (log: $logfile)"
  fi
}

# running_and_answering NAME BINARY CMD...: NAME runs and CMD gets an answer from it. A live but
# silent process gets its usual start-up time first (on a loaded machine a ping can be slow);
# only then is it stopped, so that the caller starts it afresh.
running_and_answering() {
  local name=$1 binary=$2 pid
  shift 2
  pid=$(pid_alive "$name" "$binary") || return 1
  answers_within "$READY_TIMEOUT" "$@" && return 0
  log "restarting unresponsive $name (pid $pid)"
  stop_pid "$pid"
  return 1
}

# start_detached NAME LOG CMD...: run CMD in its own session, record its pid.
start_detached() {
  local name=$1 logfile=$2
  shift 2
  printf '\n--- %s starting: %s\n' "$(date -Is)" "$*" >>"$logfile"
  # 8>&- 9>&-: a service must not inherit (and so hold forever) the locks this script takes.
  env "$MANAGED_MARKER=$name" setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$SERVICES_DIR/$name.pid"
}

mariadb_client() {
  mariadb --no-defaults --protocol=socket --socket="$(mariadb_socket)" -uroot "$@"
}

mariadb_up() {
  apt_install mariadb-server mariadb-client
  mkdir -p "$MARIADB_DIR"
  running_and_answering mariadb mariadbd mariadb_client -e 'SELECT 1' && return 0
  free_port mariadb "$MYSQL_PORT"
  # The mark is written last: a data dir left half-made by an interrupted run is set aside (never
  # deleted: it might hold something) and made again.
  if [ ! -f "$MARIADB_DIR/data/.lume-initialised" ]; then
    if [ -e "$MARIADB_DIR/data" ]; then
      log "mariadb: moving the unfinished data dir aside to data.unfinished-$(date +%s)"
      mv "$MARIADB_DIR/data" "$MARIADB_DIR/data.unfinished-$(date +%s)"
    fi
    log "mariadb: initialising $MARIADB_DIR/data"
    mariadb-install-db --no-defaults --user=root --datadir="$MARIADB_DIR/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$MARIADB_DIR/install.log" 2>&1 ||
      { tail -n 40 "$MARIADB_DIR/install.log" >&2; die "mariadb-install-db failed"; }
    touch "$MARIADB_DIR/data/.lume-initialised"
  fi
  log "mariadb: starting on 127.0.0.1:$MYSQL_PORT"
  # --user=root: mariadbd refuses root otherwise, and the data dir belongs to whoever runs the tests.
  start_detached mariadb "$MARIADB_DIR/mariadbd.log" mariadbd --no-defaults --user=root \
    --datadir="$MARIADB_DIR/data" --socket="$(mariadb_socket)" --pid-file="$MARIADB_DIR/mariadbd.pid" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --innodb-buffer-pool-size=64M --max-connections=300
  wait_until mariadb "$MARIADB_DIR/mariadbd.log" mariadb_client -e 'SELECT 1'
  # Tests make their own lume_* databases; `lume\_%` keeps the underscore literal.
  mariadb_client <<SQL
DELETE FROM mysql.global_priv WHERE User = '';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
ALTER USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON \`lume\\_%\`.* TO '$MYSQL_USER'@'%';
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;
FLUSH PRIVILEGES;
SQL
}

ferretdb_build() {
  [ -x "$FERRETDB_BIN" ] && return 0
  command -v go >/dev/null || die "go is needed to build FerretDB (https://go.dev/dl/)"
  mkdir -p "$LUME_CACHE/bin"
  # One build at a time across checkouts; a second waiter finds the binary done.
  exec 8>"$LUME_CACHE/bin/.ferretdb.lock"
  flock 8
  if [ ! -x "$FERRETDB_BIN" ]; then
    log "ferretdb: building $FERRETDB_VERSION from the Go module proxy (about a minute)"
    local moddir work
    moddir=$(cd /tmp && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
      "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))')
    [ -d "$moddir" ] || die "go mod download of FerretDB $FERRETDB_VERSION failed"
    work=$(mktemp -d)
    # The module as served lacks its generated version file; without it the binary panics at start.
    cp -r "$moddir/." "$work/"
    chmod -R u+w "$work"
    echo "$FERRETDB_VERSION" >"$work/build/version/version.txt"
    (cd "$work" && go build -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb) || { rm -rf "$work"; die "FerretDB build failed"; }
    rm -rf "$work"
    mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  fi
  exec 8>&-
}

mongodb_ping() {
  "$VENV/bin/python" -c "import pymongo,sys; pymongo.MongoClient('mongodb://127.0.0.1:$MONGODB_PORT/', serverSelectionTimeoutMS=2000).admin.command('ping')"
}

ferretdb_up() {
  ferretdb_build
  mkdir -p "$FERRETDB_DIR/data" "$FERRETDB_DIR/state"
  running_and_answering ferretdb ferretdb mongodb_ping && return 0
  free_port ferretdb "$MONGODB_PORT"
  log "ferretdb: starting on 127.0.0.1:$MONGODB_PORT"
  # --debug-addr=-: its metrics listener would otherwise take 127.0.0.1:8088 from someone else.
  start_detached ferretdb "$FERRETDB_DIR/ferretdb.log" "$FERRETDB_BIN" --handler=sqlite \
    --sqlite-url="file:$FERRETDB_DIR/data/" --listen-addr="127.0.0.1:$MONGODB_PORT" \
    --state-dir="$FERRETDB_DIR/state" --debug-addr=- --telemetry=disable --log-level=warn
  wait_until ferretdb "$FERRETDB_DIR/ferretdb.log" mongodb_ping
}

prefect_up() {
  log "prefect: server on 127.0.0.1:$PREFECT_PORT, work pool $WORK_POOL"
  local_platform up
}

write_env() {
  local tmp=$SERVICES_ENV.tmp
  cat >"$tmp" <<ENV
# Written by hack/services.sh up: how tests reach the local services.
LUME_TEST_MYSQL_URL=mysql+pymysql://$MYSQL_USER:$MYSQL_PASSWORD@127.0.0.1:$MYSQL_PORT/$MYSQL_DATABASE
LUME_TEST_MYSQL_HOST=127.0.0.1
LUME_TEST_MYSQL_PORT=$MYSQL_PORT
LUME_TEST_MYSQL_USER=$MYSQL_USER
LUME_TEST_MYSQL_PASSWORD=$MYSQL_PASSWORD
LUME_TEST_MYSQL_DATABASE=$MYSQL_DATABASE
LUME_TEST_MONGODB_URL=mongodb://127.0.0.1:$MONGODB_PORT/
PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api
LUME_TEST_WORK_POOL=$WORK_POOL
ENV
  mv "$tmp" "$SERVICES_ENV"
}

cmd_up() {
  [ -x "$VENV/bin/python" ] || "$ROOT/hack/bootstrap.sh"
  mkdir -p "$SERVICES_DIR"
  # Parallel `up`s (several shells or engineers) must not race each other into double starts.
  exec 9>"$SERVICES_DIR/.lock"
  flock 9
  mariadb_up
  ferretdb_up
  prefect_up
  write_env
  log "services up; environment in $SERVICES_ENV"
}

cmd_down() {
  local purge=${1:-} name binary port pid
  mkdir -p "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/.lock"
  flock 9
  if [ -x "$VENV/bin/python" ]; then
    local_platform down
  fi
  for name in ferretdb:ferretdb:$MONGODB_PORT mariadb:mariadbd:$MYSQL_PORT; do
    IFS=: read -r name binary port <<<"$name"
    if pid=$(pid_alive "$name" "$binary"); then
      log "stopping $name (pid $pid)"
      stop_pid "$pid"
    fi
    rm -f "$SERVICES_DIR/$name.pid"
    [ -x "$VENV/bin/python" ] && { stop_leftover "$name" "$port" || log "left alone: port $port is used by $HOLDER"; }
  done
  rm -f "$SERVICES_ENV"
  if [ "$purge" = --purge ]; then
    log "deleting $SERVICES_DIR"
    rm -rf "$SERVICES_DIR" "$(mariadb_socket)"
  fi
}

cmd_status() {
  local rc=0 pid
  if pid=$(pid_alive mariadb mariadbd); then echo "mariadb: running (pid $pid) on 127.0.0.1:$MYSQL_PORT"
  else echo "mariadb: stopped"; rc=3; fi
  if pid=$(pid_alive ferretdb ferretdb); then echo "ferretdb: running (pid $pid) on 127.0.0.1:$MONGODB_PORT"
  else echo "ferretdb: stopped"; rc=3; fi
  if [ -x "$VENV/bin/python" ]; then
    local_platform status | sed 's/^/prefect /' || rc=3
  else
    echo "prefect: stopped (no $VENV)"; rc=3
  fi
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  down)
    case "${2:-}" in "" | --purge) cmd_down "${2:-}" ;; *) die "unknown option for down: $2 (only --purge)" ;; esac ;;
  status) cmd_status ;;
  *) die "usage: $0 up | down [--purge] | status" ;;
esac
