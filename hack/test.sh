#!/usr/bin/env bash
# The whole test suite: install what it needs, start the real services and the cluster, run pytest.
# Extra arguments go to pytest (e.g. `hack/test.sh tests/unit -k settings`).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/hack/bootstrap.sh"
log "ruff"
"$VENV/bin/ruff" check .
# Headless Chromium for the dashboard's browser tests (Debian's build; nothing is downloaded at run time).
apt_install chromium fonts-dejavu-core
"$ROOT/hack/services.sh" up
"$ROOT/hack/cluster.sh" up
set -a
# shellcheck disable=SC1091
source "$LUME_STATE/services.env"
# shellcheck disable=SC1091
source "$LUME_STATE/cluster.env"
set +a
mkdir -p "$ROOT/test-output"
log "pytest"
exec "$VENV/bin/pytest" "$@"
