#!/bin/bash
# mklayer.sh BASE DIR: build the Ansible layer of the host tier in DIR (once):
# python3 and python3-apt installed on top of the cached base root BASE,
# kept as an overlay upper directory (only what the install added). Hosts
# that Ansible manages boot from lowerdir=DIR:BASE, as a Debian machine an
# operator reaches with Ansible has Python; the other tests keep the bare
# base.
#
# Keyed by this script and the base root's key: change either and the next
# run builds the layer again. BASE is only read (its overlay is mounted in
# a private mount namespace), so the shared base root is never changed.
set -euo pipefail
base=${1:?usage: mklayer.sh BASE DIR}
dir=${2:?usage: mklayer.sh BASE DIR}
packages="python3 python3-apt"
key=$(cat "$0" "$base/.vipkit-root" | sha256sum | cut -c1-16)
if [ -f "$dir/.vipkit-layer" ] && [ "$(cat "$dir/.vipkit-layer")" = "$key" ]; then
	echo "hosts ansible layer: $dir (cached)"
	exit 0
fi
tmp="$dir.tmp"
rm -rf "$tmp" "$dir"
mkdir -p "$tmp/upper" "$tmp/work" "$tmp/merged"
unshare --mount sh -euc '
	mount --make-rprivate /
	mount -t overlay overlay -o lowerdir="$1",upperdir="$2/upper",workdir="$2/work" "$2/merged"
	mount -t proc proc "$2/merged/proc"
	mount --bind /etc/resolv.conf "$2/merged/etc/resolv.conf"
	chroot "$2/merged" apt-get update -qq
	chroot "$2/merged" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $3
	chroot "$2/merged" apt-get clean
	rm -rf "$2"/merged/var/lib/apt/lists/*
' sh "$base" "$tmp" "$packages"
rm -rf "$tmp/work" "$tmp/merged"
mv "$tmp/upper" "$tmp/layer"
echo "$key" > "$tmp/layer/.vipkit-layer"
mv "$tmp/layer" "$dir"
rmdir "$tmp"
echo "hosts ansible layer: $dir (built)"
