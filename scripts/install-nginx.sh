#!/usr/bin/env bash
# Installs nginx from the Debian packages when it is missing (`cargo xtask replicas` starts its
# own nginx, with a generated configuration in a temporary directory, as the round-robin load
# balancer in front of the dice server replicas). Idempotent: does nothing when `nginx` is on
# PATH (or in /usr/sbin). Runs as root (CI and our machines) without a terminal; no sudo.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
if command -v nginx >/dev/null 2>&1; then
    nginx -v 2>&1
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# nginx-light (older releases) or nginx (newer ones, where nginx-light is gone); both carry the
# upstream, proxy and map modules the load balancer needs.
if apt-cache show nginx-light >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends nginx-light
else
    apt-get install -y --no-install-recommends nginx
fi
# The package may start a system instance on port 80; we never use it, stop it if it runs.
if command -v service >/dev/null 2>&1; then
    service nginx stop >/dev/null 2>&1 || true
fi
nginx -v 2>&1
