#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian as root, install and start one if none does;
# elsewhere, say how to start Docker and stop.
set -euo pipefail

answers() { timeout 10 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
    exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    cat >&2 <<'MSG'
cube: no Docker engine answers (`docker info` failed).
  - macOS / Windows: start Docker Desktop and wait until it says "Engine running".
  - Linux: start the daemon, e.g. `sudo systemctl start docker` (not installed? Debian and Ubuntu:
    `sudo apt-get install docker.io`), and make sure your user may use it
    (`sudo usermod -aG docker $USER`, then log in again). As root on Debian, cube installs it itself.
Then run this command again.
MSG
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "cube: no Docker engine here; installing Debian's docker.io" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

log=/var/log/cube-dockerd.log
echo "cube: starting dockerd (log: $log)" >&2
setsid dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 60); do
    if answers; then
        echo "cube: Docker engine is up" >&2
        exit 0
    fi
    sleep 1
done
echo "cube: dockerd did not answer within 60 s; see $log" >&2
tail -n 20 "$log" >&2
exit 1
