#!/bin/bash
# build-deb.sh ARCH VERSION OUTDIR BINDIR DOCDIR: one vipkit_VERSION_ARCH.deb.
#
# BINDIR holds vipctl and fenced built for ARCH; DOCDIR the man pages and
# completion scripts (gen-docs). Built with dpkg-deb, Debian's own tool:
# every Debian machine has it, it needs no module download or pinning, and
# its output is by definition what dpkg expects. Run from the repository.
set -euo pipefail
arch=$1 version=$2 out=$3 bin=$4 docs=$5
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Reproducible: timestamps from the last commit, not the clock.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
umask 022

d() { install -d -m 0755 "$root/$1"; }
f() { install -D -m "$1" "$2" "$root/$3"; }

f 0755 "$bin/vipctl" usr/sbin/vipctl
f 0755 "$bin/fenced" usr/sbin/fenced
f 0644 contrib/systemd/fenced.service usr/lib/systemd/system/fenced.service
f 0644 contrib/systemd/keepalived-override.conf usr/lib/systemd/system/keepalived.service.d/vipkit.conf
f 0644 contrib/systemd/vipkit.tmpfiles.conf usr/lib/tmpfiles.d/vipkit.conf
install -d -m 0700 "$root/etc/vipkit"
# The example configuration with its [[cluster]] and [[instance]] blocks
# commented out: fenced.service (enabled) starts once a cluster is named.
awk 'BEGIN { print "# Installed by the vipkit package. fenced starts once a [[cluster]] and its"; print "# [[instance]]s below are configured (systemctl start fenced)."; print "" }
	/^\[\[cluster\]\]/ { off = 1 }
	{ if (off && $0 != "" && $0 !~ /^#/) print "#" $0; else print }' contrib/vipkit.toml > "$root/etc/vipkit/vipkit.toml"
chmod 0600 "$root/etc/vipkit/vipkit.toml"
for p in vipctl fenced; do
	d usr/share/man/man8
	gzip -9n < "$docs/$p.8" > "$root/usr/share/man/man8/$p.8.gz"
	f 0644 "$docs/$p.bash" "usr/share/bash-completion/completions/$p"
	f 0644 "$docs/_$p" "usr/share/zsh/vendor-completions/_$p"
done
doc=usr/share/doc/vipkit
f 0644 contrib/debian/copyright $doc/copyright
d $doc
sed -e "s/@VERSION@/$version/" -e "s/@COMMIT@/$commit/" \
	-e "s/@DATE@/$(date -u -R -d "@$SOURCE_DATE_EPOCH")/" contrib/debian/changelog |
	gzip -9n > "$root/$doc/changelog.Debian.gz"
f 0644 README.md $doc/README.md
for m in docs/*.md; do f 0644 "$m" "$doc/$m"; done
# The contrib configurations as examples (keepalived, systemd, vipkit.toml).
while IFS= read -r c; do
	case $c in contrib/debian/*) continue ;; esac
	f 0644 "$c" "$doc/examples/${c#contrib/}"
done < <(git ls-files contrib)
f 0644 contrib/debian/lintian-overrides usr/share/lintian/overrides/vipkit

install -d -m 0755 "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 contrib/debian/$s "$root/DEBIAN/$s"; done
install -m 0644 contrib/debian/conffiles "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" contrib/debian/control.in > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/vipkit_${version}_${arch}.deb" >/dev/null
echo "$out/vipkit_${version}_${arch}.deb"
