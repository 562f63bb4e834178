#!/usr/bin/env bash
# Installs redis-server from the Debian packages when it is missing (the mcp-redis tests start
# one themselves on a free port). Idempotent: does nothing when `redis-server` is on PATH.
# Runs as root (CI and our machines); no sudo.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    redis-server --version
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends redis-server
# The package may start a system instance on 6379; the tests never use it, stop it if it runs.
if command -v service >/dev/null 2>&1; then
    service redis-server stop >/dev/null 2>&1 || true
fi
redis-server --version
