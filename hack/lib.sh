# Shared shell helpers for hack/ scripts: paths, caching and logging. Sourced, never run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Built binaries and images are cached by version here, outside the checkout, so fresh clones reuse them.
LUME_CACHE=${LUME_CACHE:-$HOME/.cache/lume}
# Runtime state (data dirs, logs, pid files) of what the scripts start; `make down` removes it.
LUME_STATE=${LUME_STATE:-$ROOT/.state}
VENV=${VENV:-$ROOT/.venv}
mkdir -p "$LUME_CACHE" "$LUME_STATE"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_install PKG...: install Debian packages once; `apt-get update` only when something is missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
