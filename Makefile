# vipkit — run everything as root on Debian: `make demo`, `make test`.
SHELL := /bin/bash
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
BIN := $(CURDIR)/bin
# Tests run go themselves (go build, go list): keep it on their PATH.
export PATH := $(dir $(GO)):$(PATH)
export VIPKIT_BIN_DIR := $(BIN)
# Debian packages the tests, the lab and the demo use.
APT_PACKAGES := keepalived iproute2 tcpdump iputils-ping procps systemd debootstrap lintian
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build deps etcd test test-unit lint bench bench-fleet demo install clean docs deb hosts-root demo-hosts

all: build keepalived

# Ansible from Debian 12, pinned (NAME=VERSION: deps installs exactly that
# version): the controller of test/hosts' TestHostsAnsible, and ansible-lint
# for contrib/ansible.
APT_PACKAGES += ansible=7.7.0+dfsg-3+deb12u1 ansible-core=2.14.18-0+deb12u2 ansible-lint=6.13.1-1

## deps: install the Debian packages that are missing (needs root)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		s=$$(dpkg-query -W -f='$${Status} $${Version}' $${p%%=*} 2>/dev/null); \
		case $$p in *=*) [ "$$s" = "install ok installed $${p#*=}" ] || echo $$p;; \
		*) case "$$s" in "install ok installed "*) ;; *) echo $$p;; esac;; esac; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: bin/vipctl and bin/fenced
build:
	@mkdir -p $(BIN)
	@# Static (no cgo): a dynamically linked vipctl costs every hook ~0.8 ms of loader work.
	CGO_ENABLED=0 $(GO) build -trimpath -tags urfave_cli_no_docs -ldflags '$(GO_LDFLAGS)' -o $(BIN)/vipctl ./cmd/vipctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(GO_LDFLAGS)' -o $(BIN)/fenced ./cmd/fenced

## docs: man pages and bash/zsh completion from the CLI definitions (bin/docs)
# A documentation-only build (without urfave_cli_no_docs) of each command
# writes them: the installed hook binary carries no renderer.
docs:
	@mkdir -p $(BIN)/docs
	$(GO) run ./cmd/vipctl gen-docs $(BIN)/docs
	$(GO) run ./cmd/fenced gen-docs $(BIN)/docs

## deb: bin/deb/vipkit_<version>_{amd64,arm64}.deb (dpkg-deb; lintian checks them)
DEB_ARCHES ?= amd64 arm64
# Debian versions must grow with each build: the commit time orders them.
DEB_VERSION ?= 0.1.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null).$(shell git rev-parse --short HEAD 2>/dev/null)-1
deb: docs
	@for a in $(DEB_ARCHES); do \
		mkdir -p $(BIN)/$$a && \
		CGO_ENABLED=0 GOARCH=$$a $(GO) build -trimpath -tags urfave_cli_no_docs -ldflags '$(GO_LDFLAGS)' -o $(BIN)/$$a/vipctl ./cmd/vipctl && \
		CGO_ENABLED=0 GOARCH=$$a $(GO) build -trimpath -ldflags '$(GO_LDFLAGS)' -o $(BIN)/$$a/fenced ./cmd/fenced && \
		contrib/debian/build-deb.sh $$a $(DEB_VERSION) $(BIN)/deb $(BIN)/$$a $(BIN)/docs || exit 1; \
	done
	@command -v lintian >/dev/null || { echo "lintian missing: make deps"; exit 1; }
	lintian --fail-on error $(BIN)/deb/vipkit_$(DEB_VERSION)_*.deb

## hosts-root: the host tier's Debian 12 root and its Ansible layer (debootstrap, cached; a second run is free)
HOSTS_ROOT ?= /var/cache/vipkit/hosts-root
export VIPKIT_HOSTS_ROOT := $(HOSTS_ROOT)
# The Ansible layer (python3, python3-apt) laid over that root for the hosts
# Ansible manages (test/hosts/mklayer.sh; the base root is only read).
HOSTS_ANSIBLE_LAYER ?= /var/cache/vipkit/hosts-ansible-layer
export VIPKIT_HOSTS_ANSIBLE_LAYER := $(HOSTS_ANSIBLE_LAYER)
hosts-root:
	test/hosts/mkroot.sh $(HOSTS_ROOT)
	test/hosts/mklayer.sh $(HOSTS_ROOT) $(HOSTS_ANSIBLE_LAYER)

## etcd: bin/etcd, the etcd 3.6 server pinned in tools/etcd/go.mod, and bin/etcd-3.4.23
etcd: $(BIN)/etcd $(BIN)/etcd-3.4.23
$(BIN)/etcd: tools/etcd/go.mod tools/etcd/go.sum
	@mkdir -p $(BIN)
	cd tools/etcd && $(GO) build -trimpath -o $(BIN)/etcd go.etcd.io/etcd/server/v3

# Debian 12's etcd server, a release with known lease bugs (pkg/etcdversion):
# the version check is tested against what it really reports. Taken from the
# package (apt verifies it against the signed archive), not installed: the
# package would start a server on the machine.
ETCD34_DEB := etcd-server=3.4.23-4+b4
$(BIN)/etcd-3.4.23:
	@mkdir -p $(BIN)/.etcd34
	cd $(BIN)/.etcd34 && rm -f *.deb && { apt-get download -q $(ETCD34_DEB) || { apt-get update -qq && apt-get download -q $(ETCD34_DEB); }; }
	dpkg-deb --fsys-tarfile $(BIN)/.etcd34/etcd-server_*.deb | tar -xO ./usr/bin/etcd > $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@ && rm -rf $(BIN)/.etcd34
	$@ --version | grep -q '^etcd Version: 3.4.23$$'

## promtool: bin/promtool from Debian 12's prometheus package (pinned): checks the metrics, rules and their tests
# Taken from the package (apt verifies it against the signed archive), not
# installed: the package would start a Prometheus server on the machine.
PROMETHEUS_DEB := prometheus=2.42.0+ds-5+deb12u1
.PHONY: promtool
promtool: $(BIN)/promtool
$(BIN)/promtool:
	@mkdir -p $(BIN)/.prometheus
	cd $(BIN)/.prometheus && rm -f *.deb && { apt-get download -q $(PROMETHEUS_DEB) || { apt-get update -qq && apt-get download -q $(PROMETHEUS_DEB); }; }
	dpkg-deb --fsys-tarfile $(BIN)/.prometheus/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@ && rm -rf $(BIN)/.prometheus
	$@ --version 2>&1 | grep -q '^promtool, version 2\.42\.0+ds '

## keepalived: bin/keepalived-2.3.3/keepalived, built from Debian 13's source package (pinned below)
# keepalived 2.3.3 (Debian 13 "trixie", 1:2.3.3-1), the second version the
# lab and the e2e suite run on (2.2.7 is Debian 12's package). apt fetches
# the source package with a private configuration (nothing is added to the
# machine's sources); sha256sum pins the three files; it builds with
# Debian 12's libraries. One file, keyed by version: a second make is a no-op.
# Named keepalived, as installed: fenced and vipctl check know the running
# daemon by that name (/proc/PID/comm).
KEEPALIVED_233 := $(BIN)/keepalived-2.3.3/keepalived
KA233_DEBVER := 1:2.3.3-1
KA233_DSC := keepalived_2.3.3-1.dsc
KA233_SHA256 := \
	c8e5c208dfef1b2fea7591525b62259d120be04f2b26f71b089429646824a42e  keepalived_2.3.3-1.dsc \
	2288c5c7609fa452782b7acefa19acce742d0204dc17f54d36da46b10f8b590c  keepalived_2.3.3.orig.tar.gz \
	3a0fac9f9ab2d88c36759bc1e737eb78fc5df2cf0497db478bc602c9d79ce0f6  keepalived_2.3.3-1.debian.tar.xz
KA233_MIRROR ?= http://deb.debian.org/debian
KA233_WORK := $(BIN)/keepalived-2.3.3.build
KA233_APT := -o Dir::Etc::sourcelist=$(KA233_WORK)/apt/trixie.sources -o Dir::Etc::sourceparts=/dev/null \
	-o Dir::State::Lists=$(KA233_WORK)/apt/lists -o Dir::Cache=$(KA233_WORK)/apt/cache -o APT::Sandbox::User=root
# Debian's own build minus SNMP and DBus (no library for them here): BFD and
# JSON as in Debian's package, so both versions take the same options (-b).
KA233_CONFIGURE := --disable-snmp --disable-dbus --enable-bfd --enable-json
# What that configure needs, from Debian 12; deps installs them.
KEEPALIVED_BUILD_DEPS := build-essential dpkg-dev pkg-config debian-archive-keyring libssl-dev \
	libnl-3-dev libnl-genl-3-dev libnl-route-3-dev libmnl-dev libnftnl-dev libsystemd-dev
APT_PACKAGES += $(KEEPALIVED_BUILD_DEPS)

.PHONY: keepalived
keepalived: $(KEEPALIVED_233)
$(KEEPALIVED_233):
	@$(MAKE) --no-print-directory deps
	@echo "keepalived 2.3.3: fetching Debian's source package $(KA233_DEBVER) into $(KA233_WORK)"
	@rm -rf $(KA233_WORK) && mkdir -p $(KA233_WORK)/apt/lists/partial $(KA233_WORK)/apt/cache/archives/partial
	@printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		'$(KA233_MIRROR)' >$(KA233_WORK)/apt/trixie.sources
	@cd $(KA233_WORK) && apt-get -qq $(KA233_APT) update && apt-get -qq $(KA233_APT) source --download-only keepalived=$(KA233_DEBVER) >/dev/null
	@cd $(KA233_WORK) && printf '%s  %s\n' $(KA233_SHA256) | sha256sum --strict -c -
	@# The .dsc's own checksums cover the tarballs; its signature cannot be checked without debian-keyring, the pins above stand in.
	@cd $(KA233_WORK) && dpkg-source -q -x $(KA233_DSC) src 2>/dev/null
	@echo "keepalived 2.3.3: ./configure $(KA233_CONFIGURE) && make (logs in $(KA233_WORK))"
	@cd $(KA233_WORK)/src && ./configure $(KA233_CONFIGURE) >../configure.log 2>&1 || { tail -20 ../configure.log; exit 1; }
	@cd $(KA233_WORK)/src && env -u MAKEFLAGS -u MAKELEVEL make -j2 >../make.log 2>&1 || { tail -20 ../make.log; exit 1; }
	@$(KA233_WORK)/src/bin/keepalived --version 2>&1 | grep -q '^Keepalived v2\.3\.3 ' || { echo "built keepalived is not 2.3.3"; exit 1; }
	install -D -m 0755 $(KA233_WORK)/src/bin/keepalived $@.tmp && mv $@.tmp $@

## test-keepalived-2.3.3: the e2e suite, the vipkit lab and the keepalived-as-oracle tier on keepalived 2.3.3 (make test runs both versions)
# The rest of the suite runs once, on Debian's 2.2.7; the tests of the shipped
# configs run on every version each file claims, whichever keepalived is chosen.
.PHONY: test-keepalived-2.3.3
test-keepalived-2.3.3: deps build etcd keepalived
	VIPKIT_KEEPALIVED=$(KEEPALIVED_233) $(GO) test -count=1 -timeout 18m ./test/lab/vipkit/ ./pkg/keepalived/
	VIPKIT_KEEPALIVED=$(KEEPALIVED_233) $(GO) test -count=1 -timeout 18m $(E2E)

## test: every tier (unit, privileged netns, integration with etcd, e2e lab, booted Debian hosts) as root, the e2e
## suite again on keepalived 2.3.3, then the CI-sized fleet bench alone (500 lease holders, 60 s)
# The end-to-end suite measures milliseconds between hosts: it runs alone,
# after the other packages (which run in parallel), so a booted host or an
# oracle run beside it does not starve its observer.
E2E := ./test/e2e/
test: deps build etcd keepalived promtool hosts-root deb
	$(GO) test -count=1 -timeout 18m $$($(GO) list ./... | grep -v -x -F github.com/vipkit/vipkit/test/e2e)
	$(GO) test -count=1 -timeout 18m $(E2E)
	@$(MAKE) --no-print-directory test-keepalived-2.3.3
	VIPKIT_FLEET=1 $(GO) test -count=1 -timeout 10m -run TestIntegrationFleet -v ./test/fleet

## bench-fleet: the fleet report (docs/performance.md): 100 to 10,000 lease holders, with faults (root; ~1 h)
bench-fleet: build etcd
	VIPKIT_FLEET=1 $(GO) test -count=1 -timeout 4h -run TestIntegrationFleet -v ./test/fleet \
		-fleet.steps 100,1000,3000,10000 -fleet.ttls 5s,10s -fleet.window 60s \
		-fleet.faults none,kill-leader,stop-leader,starve-client -fleet.assert-up-to 0 -fleet.report $(CURDIR)/results/fleet.txt

## test-unit: only what needs neither root nor binaries
test-unit:
	$(GO) test -count=1 -short ./...

## lint: gofmt, go mod tidy, go vet, staticcheck (pinned in tools/lint)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	cd tools/lint && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	$(BIN)/staticcheck ./...

## demo: the lab's story with vipkit: election, handover, crash, etcd loss, split brain, local client; split brain among three nodes without and with the witness (root; ~1 min)
demo: deps build etcd keepalived
	$(GO) run ./test/lab/cmd/labctl demo

## demo-hosts: the package on booted Debian hosts: install, watchdog, restart and upgrade without failover, purge (root; ~2 min)
demo-hosts: deps build etcd hosts-root deb
	$(GO) test -count=1 -v -run TestHostsPackageUnderSystemd ./test/hosts/

PREFIX ?= /usr/local
## install: binaries (root-owned, as keepalived's enable_script_security needs), units, example config
install: build docs
	install -d -m 0755 -o root -g root $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 -o root -g root $(BIN)/vipctl $(BIN)/fenced $(DESTDIR)$(PREFIX)/sbin/
	@# The unit names the package's /usr/sbin; point it at PREFIX.
	install -d -m 0755 $(DESTDIR)/etc/systemd/system
	sed 's|/usr/sbin/|$(PREFIX)/sbin/|g' contrib/systemd/fenced.service > $(DESTDIR)/etc/systemd/system/fenced.service
	chmod 0644 $(DESTDIR)/etc/systemd/system/fenced.service
	install -D -m 0644 -o root -g root contrib/systemd/keepalived-override.conf $(DESTDIR)/etc/systemd/system/keepalived.service.d/vipkit.conf
	install -D -m 0644 -o root -g root contrib/systemd/vipkit.tmpfiles.conf $(DESTDIR)/etc/tmpfiles.d/vipkit.conf
	install -d -m 0700 -o root -g root $(DESTDIR)/etc/vipkit
	test -e $(DESTDIR)/etc/vipkit/vipkit.toml || install -m 0600 -o root -g root contrib/vipkit.toml $(DESTDIR)/etc/vipkit/vipkit.toml
	install -D -m 0644 $(BIN)/docs/vipctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/vipctl.8
	install -D -m 0644 $(BIN)/docs/fenced.8 $(DESTDIR)$(PREFIX)/share/man/man8/fenced.8
	install -D -m 0644 $(BIN)/docs/vipctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vipctl
	install -D -m 0644 $(BIN)/docs/fenced.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/fenced
	install -D -m 0644 $(BIN)/docs/_vipctl $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_vipctl
	install -D -m 0644 $(BIN)/docs/_fenced $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_fenced
	@echo "next: edit /etc/vipkit/vipkit.toml, pick a contrib/keepalived/*.conf, systemd-tmpfiles --create, systemctl daemon-reload"

## bench: hook cost against a shell hook and an empty Go binary; fenced at rest (root)
bench: deps build etcd
	$(GO) run ./test/bench/hooks -vipctl $(BIN)/vipctl -rounds 300
	$(GO) run ./test/bench/fenced -bin $(BIN) -window 30s
	$(GO) test -count=1 -run 'TestIntegrationFenceBeforeServerExpiry|TestIntegrationAtRest' -v ./pkg/lease/ | grep -E 'fence-lead-ms|req-per-sec|renew-latency|^(ok|FAIL)'
	$(GO) test -count=1 -run 'TestPrivilegedRouteGuardRemovesOrphanAtOnce' -v ./pkg/guard/ | grep -E 'route-guard|^(ok|FAIL)'

clean:
	rm -rf $(BIN)
