#!/bin/sh
# Installs the peer proxies the benchmark compares Portcullis with (Debian's
# squid, squidGuard, e2guardian, tinyproxy) and the wrk load generator, then
# makes sure none of them runs as a system service: the bench starts its own
# instances, as child processes with their own configuration in a temp
# folder, on free loopback ports. Idempotent; run as root.
set -eu

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/peers/setup.sh: run as root (apt-get install, /etc/hosts)" >&2
  exit 1
fi

PACKAGES="squid squidguard e2guardian tinyproxy wrk"

missing=""
for package in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
    missing="$missing $package"
  fi
done
if [ -n "$missing" ]; then
  apt-get update
  # shellcheck disable=SC2086 # one word per package on purpose
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

# The packages' own services would hold the default ports and their own
# configuration; the bench never uses them.
for service in squid e2guardian tinyproxy; do
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  else
    service "$service" stop >/dev/null 2>&1 || true
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done

# The peers resolve names themselves (squid, e2guardian, tinyproxy all read
# /etc/hosts), so the bench's names must point at this machine: origin.test
# is the local origin; the gambling domain is what the blocked-request case
# asks for, so that a peer that wrongly lets it through reaches the local
# origin (which counts it) and never the internet.
add_host() {
  if ! grep -Eq "^[[:space:]]*127\.0\.0\.1[[:space:]]+([^#]*[[:space:]])?$1([[:space:]]|\$)" /etc/hosts; then
    printf '127.0.0.1 %s # Portcullis bench (bench/peers/setup.sh): %s\n' "$1" "$2" >> /etc/hosts
  fi
}
add_host origin.test 'the local origin, for peer proxies that resolve names themselves'
add_host 888casino.com 'blocked-request target; a peer that wrongly forwards it reaches the local origin, never the internet'


dpkg-query -W $PACKAGES
