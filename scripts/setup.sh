# Sourced by ./run: idempotent set-up of a Debian machine and of .venv for audiocore.
# Expects ROOT (the checkout). Sets VENV.

VENV="$ROOT/.venv"

_log() { printf 'audiocore setup: %s\n' "$*" >&2; }

_pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Debian packages this run needs and does not have yet.
_missing_packages() {
  local purpose="$1" python="$2" want=()
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists opus 2>/dev/null; then
    want+=(pkg-config libopus-dev)
  fi
  command -v gcc >/dev/null 2>&1 || want+=(gcc)
  if [ -n "$python" ]; then
    local ver
    ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    "$python" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
      want+=("python$ver-dev")
    "$python" -c 'import ensurepip, venv' 2>/dev/null || want+=("python$ver-venv")
  else
    want+=(python3 python3-dev python3-venv)
  fi
  if [ "$purpose" = test ] || [ "$purpose" = demo ]; then
    # the reference tools: oracles of the tests, the demo's check of its Ogg file
    for tool in opusinfo opusdec opusenc; do
      command -v "$tool" >/dev/null 2>&1 || { want+=(opus-tools); break; }
    done
  fi
  if [ "$purpose" = test ]; then
    # curl (with nghttp2): an independent HTTP/2 client for the Sora gateway's tests
    command -v curl >/dev/null 2>&1 || want+=(curl)
  fi
  echo "${want[@]}"
}

_install_packages() {
  local packages=("$@")
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    _log "installing ${packages[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    _log "missing system packages; as root run: apt-get install ${packages[*]}"
    exit 1
  fi
}

# True when a kernel is missing or a kernel source or setup.py changed since the last build
# (recorded in $VENV/.kernels-built). setuptools' own check looks at build/, which an editable
# install leaves empty: it would rebuild every kernel once.
_kernels_stale() {
  "$VENV/bin/python" - "$VENV/.kernels-built" <<'PY'
import sys, sysconfig
from pathlib import Path
stamp, ext = Path(sys.argv[1]), Path("src/audiocore/_ext")
built = [ext / (p.stem + sysconfig.get_config_var("EXT_SUFFIX")) for p in ext.glob("*.pyx")]
if not stamp.exists() or not all(p.exists() for p in built):
    sys.exit(0)
sources = [*ext.glob("*.pyx"), *ext.glob("*.pxd"), *ext.glob("csrc/*"), Path("setup.py")]
sys.exit(0 if max(p.stat().st_mtime for p in sources) > stamp.stat().st_mtime else 1)
PY
}

audiocore_setup() {
  local purpose="${1:-}" python missing
  python="$(_pick_python || true)"
  missing="$(_missing_packages "$purpose" "$python")"
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    _install_packages $missing
    python="$(_pick_python)" || { _log "Python 3.11 or newer is required"; exit 1; }
  fi

  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    _log "creating $VENV"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
  fi

  # Reinstall when the packaging changed; otherwise just rebuild kernels whose sources changed.
  local stamp want_stamp
  want_stamp="$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)"
  stamp="$(cat "$VENV/.audiocore-stamp" 2>/dev/null || true)"
  if [ "$stamp" != "$want_stamp" ]; then
    _log "installing audiocore (editable) with its test and bench extras into $VENV"
    touch "$VENV/.kernels-built.new"  # sources changed during the build count as changed
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip setuptools wheel \
      "Cython>=3" "numpy>=1.26"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
      -e ".[test,bench]"
    echo "$want_stamp" >"$VENV/.audiocore-stamp"
    mv "$VENV/.kernels-built.new" "$VENV/.kernels-built"
  elif _kernels_stale; then
    _log "rebuilding the kernels whose sources changed"
    touch "$VENV/.kernels-built.new"
    "$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null 2>"$VENV/.build-log" || {
      cat "$VENV/.build-log" >&2
      _log "building the kernels failed"
      exit 1
    }
    mv "$VENV/.kernels-built.new" "$VENV/.kernels-built"
  fi
}
