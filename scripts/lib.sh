# Shared helpers for the set-up scripts (sourced, not run).
# Heavy one-time installs live under a versioned cache outside the clone.
KIS_CACHE="${KIS_CACHE:-$HOME/.cache/kis}"
KIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KIS_CACHE KIS_ROOT

log() { printf '[setup] %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing; runs apt-get update once.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ ! -f /tmp/.kis-apt-updated ]; then
    $sudo apt-get update -qq && touch /tmp/.kis-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
