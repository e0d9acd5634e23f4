# xlane build entry points. Every binary lands in bin/.
GO       ?= go
BIN      := bin
CMDS     := $(notdir $(wildcard cmd/*))
OUT      := out

.PHONY: all build test run demo package bench fuzz vet clean proto p4

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# The tests against real Open vSwitch (the OpenFlow driver's and the
# testbed's end-to-end tests) run after the rest, one package at a time
# and verbosely: they measure latency through a userspace switch, which
# other packages' tests would starve of CPU, and the log shows each one
# passing (or skipped, with the reason: they need root and Open vSwitch).
OVS_PKGS := ./southbound/openflow ./testbed ./testbed/latency
test:
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e '/testbed$$' -e '/testbed/latency$$' -e '/southbound/openflow$$')
	$(GO) test -count=1 -p 1 -v $(OVS_PKGS)

# The main job: the latency comparison on the testbed (X-Lane, X-Lane
# without endhost tuning, plain UDP; cross traffic and CPU load), about
# a minute and a half. It needs root; Open vSwitch is installed if missing.
LATENCY_PACKETS ?= 15000
run: build
	@if [ "$$(id -u)" != 0 ]; then echo "make run needs root (network namespaces, Open vSwitch): run it with sudo"; exit 1; fi
	@command -v ovs-vswitchd >/dev/null && command -v ethtool >/dev/null || \
		(apt-get update && apt-get install -y openvswitch-switch ethtool iproute2)
	@mkdir -p $(OUT)
	$(BIN)/xlane bench latency --packets $(LATENCY_PACKETS) --out $(OUT)

# The traffic-engineering demo (k=4 fat-tree, mixed requests, adversarial
# simulation, summary table).
demo: build
	@mkdir -p $(OUT)
	$(BIN)/xlane demo --out $(OUT)

# The Debian package (binaries, xlane-endhost's systemd unit and default
# configuration), built with nfpm.
package: build
	$(BIN)/xlane-deb --bin $(BIN) --out $(OUT)/xlane.deb

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Short fuzzing pass over every decoder (go test -fuzz takes one target at a time).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseTopology -fuzztime 30s ./controller/te
	$(GO) test -run '^$$' -fuzz FuzzParseRequests -fuzztime 30s ./controller/te
	$(GO) test -run '^$$' -fuzz FuzzParseTunnels -fuzztime 30s ./controller/te
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./controller/config
	$(GO) test -run '^$$' -fuzz FuzzRequestValidation -fuzztime 30s ./controller/server
	$(GO) test -run '^$$' -fuzz FuzzCodecUnmarshal -fuzztime 30s ./controller/server
	$(GO) test -run '^$$' -fuzz FuzzParseWatchResponse -fuzztime 30s ./controller/server
	$(GO) test -run '^$$' -fuzz FuzzParseWAL -fuzztime 30s ./controller/store
	$(GO) test -run '^$$' -fuzz FuzzDecoders -fuzztime 30s ./southbound/openflow
	$(GO) test -run '^$$' -fuzz FuzzWrite -fuzztime 30s ./southbound/p4rt/p4rttest
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime 30s ./endhost/wire
	$(GO) test -run '^$$' -fuzz FuzzUnpackMatchesModel -fuzztime 30s ./endhost/wire
	$(GO) test -run '^$$' -fuzz FuzzAddMatchesGeneralPath -fuzztime 30s ./endhost/wire
	$(GO) test -run '^$$' -fuzz FuzzAddAllMatchesAdd -fuzztime 30s ./endhost/wire
	$(GO) test -run '^$$' -fuzz FuzzCorruption -fuzztime 30s ./endhost/wire
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./endhost/agent
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime 30s ./endhost/app
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime 30s ./endhost/lane

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN) $(OUT)

# Regenerate the gRPC code from the protos (needs protoc, protoc-gen-go,
# protoc-gen-go-grpc and protoc-gen-go-vtproto v0.6.0 on PATH; the
# generated code is committed).
proto:
	protoc -I . -I /usr/include \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		--go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+size \
		controller/api/v1/controller.proto

# Regenerates the committed P4 artifacts (BMv2 JSON and P4Info) of the
# switch pipeline. Needs p4c's BMv2 backend on PATH (p4c 1.2.4.8 builds on
# Debian 12); the artifacts are committed, so nothing else needs p4c.
P4C ?= p4c-bm2-ss
p4:
	@mkdir -p p4/switch/build
	$(P4C) --arch v1model --std p4-16 -o p4/switch/build/xlane.json \
		--p4runtime-files p4/switch/build/xlane.p4info.txtpb p4/switch/xlane.p4
