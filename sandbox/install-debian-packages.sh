#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet, as root or through
# sudo, with one `apt-get update` before the first install. Installed packages are never touched,
# so a second run does nothing. Where it cannot install (no root, no sudo, not Debian), it says in
# one line what is missing and the command that installs it, and fails.
#
#   bash sandbox/install-debian-packages.sh PACKAGE...
set -euo pipefail

log() { printf '[debian-packages] %s\n' "$*" >&2; }

missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  log "missing Debian packages: ${missing[*]}; install them as root with:" \
    "apt-get update && apt-get install -y ${missing[*]}"
  exit 1
fi
command -v apt-get >/dev/null || {
  log "missing packages ${missing[*]}, and this machine has no apt-get (the project targets Debian 12)"
  exit 1
}

log "installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
