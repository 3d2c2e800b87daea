#!/usr/bin/env bash
# The main job: the example flows end to end on the embedded local platform, through the `lume` CLI a
# user would type: `lume up` (Prefect on SQLite at 127.0.0.1:4200, the `lume-local` process pool and its
# worker, the dashboard), `lume apply` of the example Flow manifests, `lume run --watch` of each, then the
# saved file and the stored result read back. Safe to run again: apply changes nothing that is already
# right, and the same result is stored once. `make down` stops the platform; its data stays.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/hack/bootstrap.sh"

# Data of the runs (files, results, registry) stays in the checkout. The worker started by `lume up`
# hands this environment to every flow run.
export LUME_HOME="${LUME_HOME:-$LUME_STATE/local/lume-home}"
export LUME_LOCAL_STATE="$LUME_STATE/local"
# Wide enough that rich does not fold the CLI's lines when they go to a log.
export COLUMNS="${COLUMNS:-120}"
lume() { "$VENV/bin/lume" "$@"; }
step() { printf '\n==> %s\n' "$*"; }

step "lume up"
lume up
step "lume apply -f examples/flows -f examples/graph/graph-flow.yaml"
lume apply -f examples/flows/append-text.yaml -f examples/flows/text-model.yaml \
  -f examples/flows/text-pipeline.yaml -f examples/graph/graph-flow.yaml

step "lume run append-text --watch"
lume run append-text --watch
step "the saved file"
# The manifest saves to append-text/output.txt on the `local` filesystem ($LUME_HOME/files).
saved="$LUME_HOME/files/append-text/output.txt"
[[ -f $saved ]] || die "append-text completed but $saved is not there"
echo "$saved: $(cat "$saved")"

step "lume run text-model --watch"
lume run text-model --watch | tee "$LUME_LOCAL_STATE/text-model-run.txt"
unique_hash=$(sed -n 's/.*"unique_hash": "\([0-9a-f]*\)".*/\1/p' "$LUME_LOCAL_STATE/text-model-run.txt" | head -1)
[[ -n $unique_hash ]] || die "text-model completed but returned no result reference"
step "the stored result, read back from the results store: lume results --hash $unique_hash"
lume results --hash "$unique_hash" --json

step "lume run text-pipeline --watch (a flow of flows)"
lume run text-pipeline --watch
step "lume run beam-emittance --watch (a workflow graph; nodes cached under \$LUME_HOME/files/graph-cache)"
lume run beam-emittance --watch

cat <<EOF

Prefect UI:     http://127.0.0.1:4200
LUME dashboard: http://127.0.0.1:4280
Data (files, results, registry): $LUME_HOME
Stop the platform: make down (or: LUME_LOCAL_STATE=$LUME_LOCAL_STATE .venv/bin/lume down)
EOF
