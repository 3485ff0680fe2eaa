#!/bin/bash
# mkroot.sh DIR: build the host tier's cached Debian 12 root in DIR (once).
#
# The root is keyed by this script's content: change the package list and
# the next run builds a new one. A finished root has DIR/.vipkit-root; a
# half-built one (interrupted debootstrap) is thrown away and rebuilt.
set -euo pipefail
dir=${1:?usage: mkroot.sh DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# systemd as PID 1 with journald and dbus; keepalived from Debian; what the
# tests run inside a host (ip, ping, ps).
include=systemd,systemd-sysv,dbus,iproute2,keepalived,procps,iputils-ping
key=$(sha256sum "$0" | cut -c1-16)
if [ -f "$dir/.vipkit-root" ] && [ "$(cat "$dir/.vipkit-root")" = "$key" ]; then
	echo "hosts root: $dir (cached)"
	exit 0
fi
tmp="$dir.tmp"
rm -rf "$tmp" "$dir"
mkdir -p "$(dirname "$dir")"
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror"
# Units that fail or make no sense in a host without consoles or a seat.
for u in systemd-logind.service e2scrub_reap.service getty@tty1.service \
	console-getty.service getty.target serial-getty@ttyS0.service systemd-networkd-wait-online.service; do
	ln -sf /dev/null "$tmp/etc/systemd/system/$u"
done
# keepalived stays enabled as Debian installs it: its unit does not start
# until /etc/keepalived/keepalived.conf exists (ConditionFileNotEmpty).
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/*
echo "$key" > "$tmp/.vipkit-root"
mv "$tmp" "$dir"
echo "hosts root: $dir (built)"
