#!/usr/bin/env bash
# The real Kubernetes control plane for the e2e suite (tests/): etcd, kubectl and kube-apiserver +
# kube-controller-manager built from Debian's source package into a versioned cache.
set -euo pipefail
bash "$(dirname "$0")/../kube/build.sh"
