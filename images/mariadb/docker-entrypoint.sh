#!/bin/bash
# First start initialises /var/lib/mysql from the official mysql image's MYSQL_* variables; then mariadbd.
set -euo pipefail

log() { echo "lume-mariadb: $*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env VAR: VAR may come from VAR_FILE instead (Kubernetes/Docker secrets), never from both.
file_env() {
  local var=$1 file_var="${1}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then die "both $var and $file_var are set"; fi
  if [ -n "${!file_var:-}" ]; then export "$var"="$(<"${!file_var}")"; fi
}

# Arguments that start with "-" are server options, as in the official image.
if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
case "$1" in mariadbd|mysqld) ;; *) exec "$@" ;; esac

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

for v in MYSQL_ROOT_PASSWORD MYSQL_DATABASE MYSQL_USER MYSQL_PASSWORD MYSQL_ROOT_HOST; do file_env "$v"; done

if [ ! -d "$DATADIR/mysql" ]; then
  if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ] \
     && [ -z "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    die "the database is uninitialized and no password option is given: set one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD, MYSQL_RANDOM_ROOT_PASSWORD"
  fi
  if [ -n "${MYSQL_USER:-}" ] && [ -z "${MYSQL_PASSWORD:-}" ]; then die "MYSQL_USER is set but MYSQL_PASSWORD is not"; fi
  if [ "${MYSQL_USER:-}" = root ]; then die "MYSQL_USER=root is not allowed; use MYSQL_ROOT_PASSWORD"; fi
  if [ -n "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    MYSQL_ROOT_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    log "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
  fi

  log "initialising $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --skip-networking --socket="$SOCKET" --datadir="$DATADIR" &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "the temporary server exited during initialisation"
    sleep 1
  done

  sql_escape() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
  root_pw=$(sql_escape "${MYSQL_ROOT_PASSWORD:-}")
  root_host=${MYSQL_ROOT_HOST:-%}
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.user WHERE user='' OR (user='root' AND host NOT IN ('localhost'));"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
    if [ "$root_host" != localhost ]; then
      echo "CREATE USER 'root'@'$root_host' IDENTIFIED BY '$root_pw';"
      echo "GRANT ALL ON *.* TO 'root'@'$root_host' WITH GRANT OPTION;"
    fi
    if [ -n "${MYSQL_DATABASE:-}" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"; fi
    if [ -n "${MYSQL_USER:-}" ]; then
      echo "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$(sql_escape "$MYSQL_PASSWORD")';"
      if [ -n "${MYSQL_DATABASE:-}" ]; then echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';"; fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --protocol=socket --socket="$SOCKET" -uroot

  client=(mariadb --protocol=socket --socket="$SOCKET" -uroot "-p${MYSQL_ROOT_PASSWORD:-}")
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) log "running $f"; . "$f" ;;
      *.sql) log "running $f"; "${client[@]}" ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} < "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${client[@]}" ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} ;;
      *) ;;
    esac
  done

  mariadb-admin --socket="$SOCKET" -uroot "-p${MYSQL_ROOT_PASSWORD:-}" shutdown
  wait "$pid" || true
  log "initialisation done"
fi

exec "$@"
