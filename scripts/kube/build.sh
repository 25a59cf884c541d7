#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from Debian's source
# package, once per machine, into $KIS_CACHE/kube-v1.20.2-1/bin/ (the e2e suite and the testbed in
# tests/ run them). No registry ships these binaries, so they are compiled offline from the vendored
# tree (~15 min on 2 cores for all three).
# Idempotent: does nothing when every binary is there and reports the expected version; a cache made
# before a binary was added to the list (e.g. without kube-scheduler) gets only the missing ones built.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

KUBE_VERSION="1.20.2"
DEB_REVISION="1"
dest="$KIS_CACHE/kube-v${KUBE_VERSION}-${DEB_REVISION}"

have_version() {
  [ -x "$dest/bin/$1" ] && "$dest/bin/$1" --version 2>/dev/null | grep -q "v${KUBE_VERSION}"
}

# Runtime pieces are needed even when the build is cached (prometheus, nginx-light: the testbed's, run by
# tests/src/prometheus.rs and tests/src/balancer.rs with their own configuration; Debian starts
# no service in a container).
apt_install etcd-server openssl prometheus nginx-light

# The e2e harness finds kubectl beside the server binaries: a copy of lib.sh's Debian kubectl.
install_kubectl() {
  [ -x "$dest/bin/kubectl" ] && return 0
  local src
  src="$(debian_kubectl)"
  mkdir -p "$dest/bin"
  cp "$src" "$dest/bin/.kubectl.tmp"
  mv "$dest/bin/.kubectl.tmp" "$dest/bin/kubectl"
  log "kube: kubectl $("$dest/bin/kubectl" version --client --short 2>/dev/null || true) in $dest/bin"
}

# Every server binary the harness runs; each is built only when missing from the cache.
wanted=(kube-apiserver kube-controller-manager kube-scheduler)
missing=()
for b in "${wanted[@]}"; do
  have_version "$b" || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_kubectl
  log "kube: cached binaries in $dest/bin"
  exit 0
fi

# Debian ships the full v1.20.2 tree (vendor/ + staging/) as a source package only.
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
src_list=/etc/apt/sources.list.d/kis-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  log "kube: enabling bookworm deb-src"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $sudo tee "$src_list" >/dev/null
  # Unreachable third-party lists may make update warn or fail; the source fetch below is the check.
  apt_update --force || true
fi
apt_install golang-go rsync jq make gcc libc6-dev golang-github-modern-go-reflect2-dev dpkg-dev

work="$(mktemp -d "${TMPDIR:-/tmp}/kis-kube-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
log "kube: fetching the kubernetes source package into $work"
# A deb-src entry left by an earlier run may not have its lists fetched yet: update once and retry.
apt-get source --download-only kubernetes >/dev/null 2>&1 \
  || { apt_update --force || true; apt-get source --download-only kubernetes >/dev/null; }
orig="$(ls kubernetes_*.orig.tar.* | head -n1)"
mkdir tree
tar -xf "$orig" -C tree --strip-components=1
cd tree

# The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian's 1.0.2 sources are a drop-in.
reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$reflect2_src" ] || { echo "kube build: $reflect2_src missing" >&2; exit 1; }
rm -rf vendor/github.com/modern-go/reflect2
cp -r "$reflect2_src" vendor/github.com/modern-go/reflect2

whats=()
for b in "${missing[@]}"; do whats+=("cmd/$b"); done
log "kube: make ${missing[*]} (takes 15+ minutes on 2 cores for all three)"
export GOFLAGS="-mod=vendor" GOTOOLCHAIN=local GOCACHE="$work/gocache" GOPATH="$work/gopath"
export KUBE_GIT_VERSION="v${KUBE_VERSION}" KUBE_GIT_TREE_STATE=clean
start=$(date +%s)
make WHAT="${whats[*]}"
log "kube: build took $(( $(date +%s) - start )) s"

out=_output/bin
[ -x "$out/${missing[0]}" ] || out="$(dirname "$(find _output -type f -name "${missing[0]}" | head -n1)")"
mkdir -p "$dest/bin"
chmod 755 "$dest" "$dest/bin"
# Install each binary atomically (copy under a temporary name, then rename): a half-copied binary
# must never look complete, and binaries already cached stay untouched.
for b in "${missing[@]}"; do
  cp "$out/$b" "$dest/bin/.$b.tmp"
  mv "$dest/bin/.$b.tmp" "$dest/bin/$b"
  have_version "$b" || { echo "kube build: installed $b does not report v${KUBE_VERSION}" >&2; exit 1; }
done
install_kubectl
log "kube: installed ${missing[*]} into $dest/bin"
