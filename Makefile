# xavyo — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: help build run oidc-op test test-integration test-e2e test-saml test-short lint bench bench-oauth bench-governance bench-gateway bench-a2a fuzz assets generate verify tools clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

build: ## Build bin/xavyo
	@echo "building $(BIN)/xavyo (the first build fetches and compiles the dependencies: a minute or two)"
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/xavyo ./cmd/xavyo

run: build ## Build and start xavyo on the embedded store (data in ./data); tool servers on loopback allowed
	XAVYO_EGRESS_ALLOW_PRIVATE=$${XAVYO_EGRESS_ALLOW_PRIVATE:-true} ./$(BIN)/xavyo serve

# The long suites that drive external components (the official MCP conformance
# suite and SDKs, the A2A CLI, openid-client, Chromium (the docs page, a
# person signing in), rsyslog, kill -9,
# database outages) run with `make test-e2e`; the whole-server suite of
# cmd/xavyo with `make test-integration`; CI runs all three targets.
E2E_TESTS := ^(TestConformanceThroughGateway|TestA2AProxy|TestA2APushNotifications|TestInteropWithRealClients|TestGatewayInteropWithOfficialSDK|TestAnsweredCallsSurviveKill9|TestDatabaseOutageUnderLoad|TestAnswersDuringDatabaseOutage|TestAuditExportToSyslog|TestDocsPage|TestBrowserSignIn|TestBrowserPasskey|TestSAMLWithNodeSAML|TestBrowserSAMLCrossSite|TestBrowserFederatedSAML|TestMailSurvivesRelayOutage|TestBrowserAccountPages)$$

# A third-party OpenID provider the federation tests sign people in
# through: zitadel's example provider (in memory, static users), from the
# Go module proxy.
OIDC_OP_VERSION := v3.52.0

$(BIN)/oidc-op/server:
	GOBIN=$(CURDIR)/$(BIN)/oidc-op $(GO) install github.com/zitadel/oidc/v3/example/server@$(OIDC_OP_VERSION)

oidc-op: $(BIN)/oidc-op/server ## Install the third-party OpenID provider the federation tests use (bin/oidc-op/server)

test: $(BIN)/oidc-op/server ## Run the tests of every package but the whole-server suite of cmd/xavyo (PostgreSQL tests skip without a server unless XAVYO_REQUIRE_POSTGRES=1)
	XAVYO_OIDC_OP=$(CURDIR)/$(BIN)/oidc-op/server $(GO) test -race -count=1 -timeout 20m -parallel 4 $$($(GO) list ./... | grep -v '/cmd/xavyo$$')

test-integration: ## Run the whole-server suite (cmd/xavyo: the API's contracts, isolation, the gateway, A2A, governance through REST) but the end-to-end suites
	$(GO) test -race -count=1 -timeout 20m -parallel 4 -skip '$(E2E_TESTS)' ./cmd/xavyo

test-e2e: ## Run the long end-to-end suites: MCP conformance, SDK, A2A CLI and OIDC interop, the docs page and sign-in pages in Chromium, syslog export, kill -9, database outages
	$(GO) test -race -count=1 -timeout 20m -parallel 4 -run '$(E2E_TESTS)' ./cmd/xavyo

test-saml: ## Run the SAML suites: the identity provider against crewjam's SP (also in make test) and @node-saml/node-saml (also in make test-e2e)
	$(GO) test -race -count=1 -timeout 10m -run 'TestSAML|TestBrowserSAML' ./identity/saml/... ./cmd/xavyo

test-short: ## Run the tests without the race detector
	$(GO) test -count=1 ./...

$(BIN)/golangci-lint: tools/go.mod tools/go.sum
	cd tools && GOBIN=$(CURDIR)/$(BIN) $(GO) install tool

tools: $(BIN)/golangci-lint ## Install the pinned tools (go.mod tool directives in tools/)

lint: $(BIN)/golangci-lint ## Lint, including the import rules of docs/design/0000-architecture.md §2, and check the repository stands alone
	@if git grep -nIE '\.\./shared' -- . ':(exclude)Makefile'; then echo "the files above refer to a folder beside the repository: a clone has none"; exit 1; fi
	$(GO) vet ./...
	./$(BIN)/golangci-lint run ./...

bench: ## Run the benchmarks (figures go to docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -skip Governance -benchmem -count 6 ./bench/... | tee bench/last.txt

bench-oauth: ## Token endpoint under load from separate processes, beside the raw signing rate
	bash bench/oauth.sh | tee bench/oauth.txt

bench-gateway: ## MCP tools/call through the gateway vs directly (bench/cmd/mcpload), 1 and 32 sessions, plaintext and TLS
	bash bench/gateway.sh | tee bench/gateway.txt

bench-a2a: ## A2A SendMessage through the gateway vs directly (a2a-go's echo agent), 1 and 32 clients
	bash bench/a2a.sh | tee bench/a2a.txt

bench-governance: ## Governance at scale on PostgreSQL: 10k users, 1k roles, 50k entitlements, 500k assignments
	XAVYO_REQUIRE_POSTGRES=1 $(GO) test -run '^$$' -bench Governance -benchtime 2s -timeout 30m ./bench/ | tee bench/governance.txt

FUZZTIME ?= 10s
fuzz: ## Run each fuzz target for FUZZTIME (default 10s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

REDOC ?= 2.5.4
assets: ## Refresh the docs page's renderer (Redoc's standalone bundle, npm package redoc@$(REDOC))
	@tmp=$$(mktemp -d); cd $$tmp && npm pack --silent redoc@$(REDOC) >/dev/null && tar xzf redoc-$(REDOC).tgz \
	  && cp package/bundles/redoc.standalone.js $(CURDIR)/app/assets/ \
	  && { echo "redoc.standalone.js is Redoc $(REDOC) (npm package redoc, bundles/redoc.standalone.js),"; \
	       echo "refreshed with: make assets. Its licence, and the licences of what it bundles:"; echo; cat package/LICENSE; echo; \
	       cat package/bundles/redoc.standalone.js.LICENSE.txt; } > $(CURDIR)/app/assets/redoc.LICENSE.txt; rm -rf $$tmp

generate: ## Rewrite generated files: docs/openapi.json from the routes, cmd/xavyo/testdata/discovery from the served documents
	$(GO) test ./cmd/xavyo -run '^(TestOpenAPIDocumentIsCurrent|TestDiscoveryDocumentsAreCurrent)$$' -count=1 -update

verify: lint test test-integration test-e2e ## Everything CI runs (but the README quickstart)

clean: ## Remove build output
	rm -rf $(BIN)
