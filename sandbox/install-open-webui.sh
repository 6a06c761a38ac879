#!/usr/bin/env bash
# Installs the Open WebUI release the role deploys (PyPI `open-webui`, its image tag without the
# v) into a virtualenv cached outside the checkout, keyed by that version, for the sandbox's real
# Open WebUI pods (icc_sandbox.open_webui_runtime). A second run, or a second clone, reuses it.
# Prints the virtualenv's directory last.
#
#   bash sandbox/install-open-webui.sh [VERSION]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${ICC_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haw-icc-sandbox}
python=${ICC_OPEN_WEBUI_PYTHON:-python3}
# Open WebUI needs PyTorch (through sentence-transformers). 2.13.0 is the release whose CPU build
# lies in pip's find-links on these machines (about 1 GB installed instead of several GB of CUDA
# libraries a CPU-only sandbox never uses); elsewhere pip takes PyPI's build of it.
torch=${ICC_OPEN_WEBUI_TORCH:-torch==2.13.0}

log() { printf '[open-webui-install] %s\n' "$*" >&2; }

version=${1:-$(sed -nE 's/^open_webui_image:[[:space:]]*[^[:space:]]+:v?([0-9][^[:space:]]*)[[:space:]]*$/\1/p' \
  "$here/../roles/open_webui/defaults/main.yml")}
[ -n "$version" ] || { log "no tagged open_webui_image in roles/open_webui/defaults/main.yml"; exit 1; }
venv="$cache_root/open-webui-$version/venv"

# The stamp is written last: a run that was cut short is started over.
if [ -f "$venv/.installed" ]; then
  log "Open WebUI $version already installed in $venv"
  echo "$venv"
  exit 0
fi

"$python" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' || {
  log "Open WebUI $version needs Python 3.11 or 3.12; $python is $("$python" -V 2>&1)" \
    "(choose another with ICC_OPEN_WEBUI_PYTHON)"
  exit 1
}
log "installing Open WebUI $version with $torch into $venv (about 2 minutes and 3.3 GB, once)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
pip_log="$(dirname "$venv")/install.log"
"$python" -m venv "$venv"
for requirement in "$torch" "open-webui==$version"; do
  "$venv/bin/pip" install --disable-pip-version-check "$requirement" >>"$pip_log" 2>&1 \
    || { tail -n 40 "$pip_log" >&2; log "pip install $requirement failed (log: $pip_log)"; exit 1; }
done
"$venv/bin/open-webui" --help >/dev/null
touch "$venv/.installed"
log "installed Open WebUI $version into $venv"
echo "$venv"
