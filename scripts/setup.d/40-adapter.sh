#!/usr/bin/env bash
# kis-adapter tests: Debian's kubectl (package kubernetes-client, 1.20.2) for the
# `kubectl get --raw` end-to-end test, and openssl for deploy/gen-certs.sh.
# kubectl is unpacked under $KIS_CACHE rather than installed, so it cannot clash with another
# /usr/bin/kubectl (e.g. the google-cloud-sdk one); the test runs
# $KIS_CACHE/debian-kubectl/usr/bin/kubectl.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install openssl
dest="$KIS_CACHE/debian-kubectl"
if [ ! -x "$dest/usr/bin/kubectl" ]; then
  log "unpacking Debian kubernetes-client into $dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! (cd "$tmp" && apt-get download kubernetes-client >/dev/null 2>&1); then
    $sudo apt-get update -qq && touch /tmp/.kis-apt-updated
    (cd "$tmp" && apt-get download kubernetes-client >/dev/null)
  fi
  rm -rf "$dest.partial"
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$dest.partial"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
fi
"$dest/usr/bin/kubectl" version --client >/dev/null
