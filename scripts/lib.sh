# Shared helpers for the set-up scripts (sourced, not run).
# Heavy one-time installs live under a versioned cache outside the clone.
KIS_CACHE="${KIS_CACHE:-$HOME/.cache/kis}"
KIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KIS_CACHE KIS_ROOT

log() { printf '[setup] %s\n' "$*" >&2; }

# apt_update [--force]: apt-get update when the package lists are older than a day (stamp under
# $KIS_CACHE, so it is per machine and expires), or always with --force.
APT_STAMP="$KIS_CACHE/apt-updated"
apt_update() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ "${1:-}" = --force ] || [ ! -f "$APT_STAMP" ] || [ -n "$(find "$APT_STAMP" -mmin +1440 2>/dev/null)" ]; then
    log "apt-get update"
    $sudo apt-get update -qq || return 1
    mkdir -p "$KIS_CACHE" && touch "$APT_STAMP"
  fi
}

# apt_install PKG...: installs the Debian packages that are missing. The lists are refreshed when
# stale (apt_update), and once more if the install still fails (a mirror moved on since).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  apt_update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt_update --force && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# fuzz_requirements: says on stderr what fuzzing (scripts/fuzz.sh) lacks and returns 1, or returns 0.
# libFuzzer needs the nightly toolchain; cargo-fuzz is built by setup.d/45-fuzz.sh.
fuzz_requirements() {
  if ! command -v rustup >/dev/null || ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzzing needs the nightly Rust toolchain (\`rustup toolchain install nightly\`); set KIS_FUZZ_SECONDS=0 to skip fuzzing" >&2
    return 1
  fi
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
      apt_update --force
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
