#!/bin/sh
# The image's install steps, in one place so that tests/test_dockerfile.py runs exactly these
# outside Docker (there is no Docker engine in CI):
#
#   install.sh wheels SRC WHEELS   build the project in SRC and every dependency as wheels into WHEELS
#   install.sh venv WHEELS VENV    create a venv at VENV and install the project from WHEELS only
#
# $PYTHON is the interpreter to use (default python3). pip's cache is whatever the environment
# says: the Dockerfile turns it off (PIP_NO_CACHE_DIR), the test keeps the normal cache.
set -eu

python="${PYTHON:-python3}"
case "${1:-}" in
wheels)
    [ "$#" -eq 3 ] || { echo "usage: $0 wheels SRC WHEELS" >&2; exit 2; }
    "$python" -m pip wheel --wheel-dir "$3" "$2"
    ;;
venv)
    [ "$#" -eq 3 ] || { echo "usage: $0 venv WHEELS VENV" >&2; exit 2; }
    "$python" -m venv "$3"
    # --no-index: nothing but the wheels built above (no network, no compiler, same bytes every time)
    "$3/bin/python" -m pip install --no-index --find-links "$2" nfd-compat-extender
    # pip (and the setuptools older Pythons put into a venv) only install; nothing at run time uses them
    "$3/bin/python" -m pip uninstall --yes pip setuptools
    ;;
*)
    echo "usage: $0 wheels SRC WHEELS | venv WHEELS VENV" >&2
    exit 2
    ;;
esac
