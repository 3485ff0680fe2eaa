# vipkit — run everything as root on Debian: `make demo`, `make test`.
SHELL := /bin/bash
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
BIN := $(CURDIR)/bin
# Tests run go themselves (go build, go list): keep it on their PATH.
export PATH := $(dir $(GO)):$(PATH)
export VIPKIT_BIN_DIR := $(BIN)
# Debian packages the tests, the lab and the demo use.
APT_PACKAGES := keepalived iproute2 tcpdump iputils-ping procps systemd
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build deps etcd test test-unit lint bench demo install clean

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

## etcd: bin/etcd, the etcd 3.6 server pinned in tools/etcd/go.mod
etcd: $(BIN)/etcd
$(BIN)/etcd: tools/etcd/go.mod tools/etcd/go.sum
	@mkdir -p $(BIN)
	cd tools/etcd && $(GO) build -trimpath -o $(BIN)/etcd go.etcd.io/etcd/server/v3

## test: every tier (unit, privileged netns, integration with etcd, e2e lab) as root
test: deps build etcd
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

PREFIX ?= /usr/local
## install: binaries (root-owned, as keepalived's enable_script_security needs), units, example config
install: build
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
	@echo "next: edit /etc/vipkit/vipkit.toml, pick a contrib/keepalived/*.conf, systemd-tmpfiles --create, systemctl daemon-reload"

## bench: hook cost against a shell hook and an empty Go binary; fenced at rest (root)
bench: deps build etcd
	$(GO) run ./test/bench/hooks -vipctl $(BIN)/vipctl -rounds 300
	$(GO) run ./test/bench/fenced -bin $(BIN) -window 30s
	$(GO) test -count=1 -run 'TestIntegrationFenceBeforeServerExpiry|TestIntegrationAtRest' -v ./pkg/lease/ | grep -E 'fence-lead-ms|req-per-sec|renew-latency|^(ok|FAIL)'
	$(GO) test -count=1 -run 'TestPrivilegedRouteGuardRemovesOrphanAtOnce' -v ./pkg/guard/ | grep -E 'route-guard|^(ok|FAIL)'

clean:
	rm -rf $(BIN)
