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

.PHONY: all build deps etcd test test-unit lint bench demo install clean docs deb hosts-root demo-hosts

all: build

## deps: install the Debian packages that are missing (needs root)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
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

## hosts-root: the host tier's Debian 12 root (debootstrap, cached; a second run is free)
HOSTS_ROOT ?= /var/cache/vipkit/hosts-root
export VIPKIT_HOSTS_ROOT := $(HOSTS_ROOT)
hosts-root:
	test/hosts/mkroot.sh $(HOSTS_ROOT)

## etcd: bin/etcd, the etcd 3.6 server pinned in tools/etcd/go.mod
etcd: $(BIN)/etcd
$(BIN)/etcd: tools/etcd/go.mod tools/etcd/go.sum
	@mkdir -p $(BIN)
	cd tools/etcd && $(GO) build -trimpath -o $(BIN)/etcd go.etcd.io/etcd/server/v3

## test: every tier (unit, privileged netns, integration with etcd, e2e lab) as root
test: deps build etcd hosts-root deb
	$(GO) test -count=1 -timeout 18m ./...

## test-unit: only what needs neither root nor binaries
test-unit:
	$(GO) test -count=1 -short ./...

## lint: gofmt, go vet, staticcheck (pinned in tools/lint)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools/lint && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	$(BIN)/staticcheck ./...

## demo: the lab's story with vipkit: election, handover, crash, etcd loss, split brain, local client (root; ~1 min)
demo: deps build etcd
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
