#!/usr/bin/env bash
# Installs what the sandbox needs and builds the Kubernetes control plane once.
#
# The binaries are cached outside the checkout, keyed by the Debian package version of the
# `kubernetes` source package, so a second run (or a second clone) reuses them and a rebuild
# happens only when Debian ships a new version. Prints the cache's bin directory last.
set -euo pipefail

cache_root=${ICC_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haw-icc-sandbox}
debian_packages=(etcd-server golang-go rsync jq openssl dpkg-dev make)
components=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[sandbox-install] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local p
  for p in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

apt_updated=false
apt_update_once() {
  if [ "$apt_updated" = false ]; then
    as_root apt-get update -qq
    apt_updated=true
  fi
}

# apt-get source needs a deb-src entry mirroring the machine's Debian entry.
ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  log "adding a deb-src entry for Debian bookworm"
  as_root tee /etc/apt/sources.list.d/haw-icc-sandbox-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=false
}

mapfile -t to_install < <(missing_packages)
if [ ${#to_install[@]} -gt 0 ]; then
  log "installing Debian packages: ${to_install[*]}"
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${to_install[@]}" >/dev/null
fi

ensure_deb_src
source_version() { apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2; exit}'; }
version=$(source_version)
if [ -z "$version" ]; then
  apt_update_once
  version=$(source_version)
fi
[ -n "$version" ] || { log "apt-cache knows no source package 'kubernetes'"; exit 1; }
bin_dir="$cache_root/kubernetes-$version/bin"

have_all=true
for c in "${components[@]}"; do [ -x "$bin_dir/$c" ] || have_all=false; done
if [ "$have_all" = true ]; then
  log "Kubernetes $version already built in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/haw-icc-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "fetching the Debian source package kubernetes $version"
(cd "$work" && apt-get source -qq "kubernetes=$version" >/dev/null 2>&1)
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
[ -n "$src" ] || { log "apt-get source produced no source tree"; exit 1; }

log "building ${components[*]} (about 4 minutes on 2 cores, once)"
(
  cd "$src"
  export GOPATH="$src/.go" CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache"
  mkdir -p .go/src/k8s.io
  ln -s ../../.. .go/src/k8s.io/kubernetes
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; exit 1; }
)
mkdir -p "$bin_dir.partial"
for c in "${components[@]}"; do
  install -m 0755 "$src/_output/local/bin/linux/amd64/$c" "$bin_dir.partial/$c"
done
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
log "built Kubernetes $version into $bin_dir"
echo "$bin_dir"
