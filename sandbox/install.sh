#!/usr/bin/env bash
# Installs what the sandbox needs and builds the Kubernetes control plane once.
#
# The binaries are cached outside the checkout, keyed by the Debian package version of the
# `kubernetes` source package, so a second run (or a second clone) reuses them and a rebuild
# happens only when Debian ships a new version. Prints the cache's bin directory last.
set -euo pipefail

cache_root=${ICC_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haw-icc-sandbox}
debian_packages=(etcd-server golang-go rsync jq openssl dpkg-dev make iproute2)
components=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[sandbox-install] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=false
apt_update_once() {
  if [ "$apt_updated" = false ]; then
    as_root apt-get update -qq
    apt_updated=true
  fi
}

# `apt-get update` and `apt-get install -y` of those not installed yet, as root or through sudo
# (the one script that installs Debian packages, shared with the Makefile's browser step).
bash "$(dirname "$0")/install-debian-packages.sh" "${debian_packages[@]}"

# Where this apt keeps its sources and lists: asked from apt itself, so that APT_CONFIG (a test's
# empty apt state, a chroot's) is honoured everywhere below.
eval "$(apt-config shell source_list Dir::Etc::sourcelist/f source_parts Dir::Etc::sourceparts/d)"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
src_entry="${source_parts%/}/haw-icc-sandbox-src.sources"

has_deb_src() {
  local files=()
  [ -f "$source_list" ] && files+=("$source_list")
  files+=("$source_parts"*.list "$source_parts"*.sources)
  grep -qsE '^[[:space:]]*(Types:.*\<deb-src\>|deb-src[[:space:]])' "${files[@]}" 2>/dev/null
}

# The machine's own Debian entries (those naming this release's suites) as deb-src entries, in
# deb822 form: same URIs, suites, components and keyring, so a mirror stays a mirror.
debian_src_stanzas() {
  local file
  for file in "$source_parts"*.sources; do
    [ -f "$file" ] || continue
    awk -v codename="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      {
        out = ""; types = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          if (line ~ /^Types:/) { types = line; line = "Types: deb-src" }
          if (line ~ /^Suites:/) suites = line
          if (tolower(line) ~ /^enabled:[[:space:]]*no/) enabled = "no"
          out = out line "\n"
        }
        if (enabled == "yes" && types ~ /[[:space:]]deb([[:space:]]|$)/ &&
            suites ~ ("[[:space:]]" codename "([-[:space:]]|$)")) printf "%s\n", out
      }' "$file"
  done
  # One-line entries ("deb [options] uri suite components") become stanzas too.
  for file in "$source_list" "$source_parts"*.list; do
    [ -f "$file" ] || continue
    awk -v codename="$codename" '
      $1 != "deb" { next }
      {
        options = ""; i = 2
        if ($2 ~ /^\[/) {
          while (i <= NF) { options = options " " $i; if ($i ~ /\]$/) break; i++ }
          i++
        }
        uri = $i; suite = $(i + 1)
        if (suite != codename && index(suite, codename "-") != 1) next
        components = ""
        for (j = i + 2; j <= NF; j++) components = components " " $j
        printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents:%s\n", uri, suite, components
        if (match(options, /signed-by=[^] ]+/))
          printf "Signed-By: %s\n", substr(options, RSTART + 10, RLENGTH - 10)
        printf "\n"
      }' "$file"
  done
}

# apt-get source needs a deb-src entry mirroring the machine's Debian entry.
ensure_deb_src() {
  has_deb_src && return
  local stanzas
  stanzas=$(debian_src_stanzas)
  if [ -z "$stanzas" ]; then
    log "no Debian ($codename) entry in $source_list or $source_parts to mirror as deb-src;" \
      "add a deb-src entry for the source package 'kubernetes' yourself"
    exit 1
  fi
  log "adding deb-src entries mirroring this machine's Debian entries: $src_entry"
  printf '%s\n' "$stanzas" | as_root tee "$src_entry" >/dev/null
  apt_updated=false
}

# The newest version of the source package apt knows, or nothing; never fails the script (before
# the first `apt-get update` with a deb-src entry, apt-cache has no source lists and exits 100).
source_version() {
  { apt-cache showsrc kubernetes 2>/dev/null || true; } | awk '/^Version:/ {print $2; exit}'
}

ensure_deb_src
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
