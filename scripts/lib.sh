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

# debian_kubectl: unpacks Debian's kubectl 1.20.2 (package kubernetes-client) once into
# $KIS_CACHE/debian-kubectl and prints the binary's path. Unpacked, not installed, so it cannot
# clash with another kubectl on the machine (e.g. Google's `kubectl` package).
debian_kubectl() {
  local dest="$KIS_CACHE/debian-kubectl" tmp sudo=""
  if [ ! -x "$dest/usr/bin/kubectl" ]; then
    log "unpacking Debian kubernetes-client into $dest"
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    mkdir -p "$KIS_CACHE" || return 1
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/kis-kubectl.XXXXXX")" || return 1
    if ! (cd "$tmp" && apt-get download kubernetes-client >/dev/null 2>&1); then
      $sudo apt-get update -qq && touch /tmp/.kis-apt-updated
      (cd "$tmp" && apt-get download kubernetes-client >/dev/null) || { rm -rf "$tmp"; return 1; }
    fi
    rm -rf "$dest.partial"
    dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$dest.partial" || { rm -rf "$tmp"; return 1; }
    rm -rf "$tmp" "$dest"
    mv "$dest.partial" "$dest" || return 1
  fi
  "$dest/usr/bin/kubectl" version --client >/dev/null || return 1
  printf '%s\n' "$dest/usr/bin/kubectl"
}
