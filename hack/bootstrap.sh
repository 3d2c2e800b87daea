#!/usr/bin/env bash
# Create .venv with the pinned Python packages; a no-op when pyproject.toml and constraints.txt are unchanged.
source "$(dirname "$0")/lib.sh"
stamp="$VENV/.lume-stamp"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
log "installing Python packages into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade "pip==25.3"
# A lagging package index sometimes misses prefect's certifi floor for a while: retry before failing.
for attempt in 1 2 3; do
  if "$VENV/bin/pip" install -q -c "$ROOT/constraints.txt" -e "$ROOT[dev]"; then
    echo "$want" > "$stamp"; exit 0
  fi
  log "pip install failed (attempt $attempt); retrying"; sleep $((attempt * 10))
done
die "could not install the Python packages (see pip's output above)"
