#!/usr/bin/env bash
# Creates .venv-sdk/ at the top of the repository: a Python virtual environment with
# the official vSphere Automation SDK pinned in tests/sdk/requirements.txt, which
# tests/sdk.rs runs against the proxy. .ci/run calls this before `cargo test`; run it
# by hand (`bash tests/sdk/venv.sh`) to run the SDK tests locally.
#
# Idempotent: .venv-sdk/.pinned records the requirements' SHA-256 and the Python
# version it was built from; when both still match, nothing is installed. Otherwise
# the venv is rebuilt from scratch, and .pinned is written last, so an install that
# was interrupted is redone next time.
#
# Needs python3 (with its venv module) and PyPI. PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."

python="${PYTHON:-python3}"
venv=.venv-sdk
req=tests/sdk/requirements.txt
stamp="$venv/.pinned"

want="$(sha256sum "$req" | cut -d' ' -f1) $("$python" -c 'import platform; print(platform.python_version())')"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv: up to date ($req unchanged)"
    exit 0
fi

echo "$venv: creating it from $req"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --no-deps --only-binary=:all: --requirement "$req"
"$venv/bin/python" -m pip check --disable-pip-version-check
# The import every scenario starts from.
"$venv/bin/python" -c 'from vmware.vapi.vsphere.client import create_vsphere_client'
echo "$want" > "$stamp"
echo "$venv: ready"
