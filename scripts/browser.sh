#!/usr/bin/env bash
# Make sure the browser tests have a Chromium: Debian's package where we can install it,
# else the one Playwright downloads (which needs the internet).
set -euo pipefail
python=${1:-python3}

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
    echo "cube: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "cube: no chromium on PATH; asking Playwright for its own" >&2
"$python" -m playwright install chromium
