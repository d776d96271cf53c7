#!/usr/bin/env bash
# Installs everything gui-approver needs to run from this checkout and to run its tests:
# Debian packages (only the missing ones), a virtualenv in .venv, the Python packages
# (bytecode compiled at install time), and the npm PASETO verifier used by the tests.
# Usage: packaging/bootstrap.sh [run|test]     (idempotent; a second run is fast)
set -euo pipefail
mode=${1:-test}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

run_debs=(libglib2.0-0 libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libfreetype6
  libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0
  libxcb-image0 libxcb-randr0 libxcb-xkb1 libxcb-xinerama0 libxcb-xinput0 libx11-xcb1
  libxi6 gnome-keyring dbus xvfb xauth)
test_debs=(xdotool x11-utils openbox desktop-file-utils appstream softhsm2 nodejs npm binutils at-spi2-core python3-pyatspi python3-xlib libxtst6
  swtpm swtpm-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtss2-tcti-swtpm0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools)
want=("${run_debs[@]}")
[ "$mode" = test ] && want+=("${test_debs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node/npm may come from outside Debian on some machines: accept any working node.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

py=""
for c in python3.13 python3.12 python3.11 python3; do
  if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    py=$(command -v "$c"); break
  fi
done
[ -n "$py" ] || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }
# Resolve a pyenv shim to the real interpreter so the venv never starts through a shim.
real=$("$py" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$py")
real=$("$real" -c 'import os, sys; print(os.path.realpath(sys.executable))')

stamp=.venv/.bootstrap-$mode
if [ ! -x .venv/bin/python ]; then
  "$real" -m venv .venv >&2
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >&2
  if [ "$mode" = test ]; then extra='.[test]'; else extra='.'; fi
  # compat mode: a plain .pth path entry, no import-hook finder (~17 ms off every bridge start)
  # PYTHONWARNINGS: the build backend's "compat editable is transitional" banner is noise here.
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --compile -e "$extra" \
    --config-settings editable_mode=compat >&2
  touch "$stamp"
fi
# Bytecode for our own package (editable installs do not compile it).
.venv/bin/python -m compileall -q gui_approver >/dev/null

# The bridge: cargo starts it for every request, so its start-up is the product's latency.
# pip's console-script wrapper starts Python with `site` (every .pth in site-packages, the
# editable install's path entry, PYTHON* variables). The bridge needs only the standard
# library and gui_approver.client, so start it isolated (-I) and without site (-S).
bridge=.venv/bin/cargo-credential-gui-approver
cat > "$bridge.tmp" <<LAUNCHER
#!$here/.venv/bin/python -IS
# Written by packaging/bootstrap.sh (not pip): the cargo credential provider, started
# isolated and without site for speed; it imports only the standard library.
import sys
sys.path.insert(0, "$here")
from gui_approver.client.bridge import main
sys.exit(main())
LAUNCHER
chmod 0755 "$bridge.tmp" && mv -f "$bridge.tmp" "$bridge"

if [ "$mode" = test ] && [ ! -d tests/node/node_modules/paseto ]; then
  (cd tests/node && npm install --silent --no-audit --no-fund >&2)
fi
