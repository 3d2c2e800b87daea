#!/usr/bin/env bash
# The main job: the example flows end to end on the embedded local platform (Prefect on 127.0.0.1:4200,
# a process worker, SQLite registry and results store, files under .state/local/lume-home).
# Prints the saved file and the stored result read back. Safe to run again;
# `.venv/bin/lume down --state-dir .state/local` stops the platform.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/hack/bootstrap.sh"
exec "$VENV/bin/python" "$ROOT/hack/run_examples.py" "$@"
