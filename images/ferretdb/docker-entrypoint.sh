#!/bin/bash
# Start FerretDB like the mongo image starts mongod: with MONGO_INITDB_ROOT_* set, a root user in the
# admin database is created on first start and every command needs SCRAM authentication.
set -euo pipefail

log() { echo "lume-ferretdb: $*" >&2; }
die() { log "error: $*"; exit 1; }

file_env() {
  local var=$1 file_var="${1}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then die "both $var and $file_var are set"; fi
  if [ -n "${!file_var:-}" ]; then export "$var"="$(<"${!file_var}")"; fi
}

# mongod options (anything starting with "-") are accepted by the official image; FerretDB has others.
if [ "${1:0:1}" = '-' ]; then die "mongod options are not supported by this stand-in: $*"; fi
case "$1" in ferretdb|mongod) shift ;; *) exec "$@" ;; esac

file_env MONGO_INITDB_ROOT_USERNAME
file_env MONGO_INITDB_ROOT_PASSWORD
if { [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ] && [ -z "${MONGO_INITDB_ROOT_PASSWORD:-}" ]; } \
   || { [ -z "${MONGO_INITDB_ROOT_USERNAME:-}" ] && [ -n "${MONGO_INITDB_ROOT_PASSWORD:-}" ]; }; then
  die "MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD must be set together"
fi

args=(
  --handler=sqlite
  --sqlite-url="file:/data/db/"
  --listen-addr=0.0.0.0:27017
  --state-dir=/data/db
  --telemetry=disable
  --log-level="${FERRETDB_LOG_LEVEL:-info}"
)
if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then
  # The setup user is created only when the admin database does not exist yet, i.e. on first start.
  args+=(
    --test-enable-new-auth
    --setup-database=admin
  )
  # Through FerretDB's own environment variables, so the password never shows in the process list.
  export FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME" FERRETDB_SETUP_PASSWORD="$MONGO_INITDB_ROOT_PASSWORD"
fi
exec ferretdb "${args[@]}" "$@"
