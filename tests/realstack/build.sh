#!/bin/sh
# tests/realstack/build.sh OUT: build the real Kairos programs the tests run, into OUT:
#   yip          yip v1.25.1, the stage executor kairos-agent v2.31.4 embeds
#   kairos-agent kairos-agent v2.31.4 (`notify agent.boot` as a node sends it)
#   busclient    the kairos-sdk bus, publishing any event as kairos-init and Stylus do
#   go-provider  the reference Go provider-rke2 (third_party/provider-rke2), side by side
# Static (CGO_ENABLED=0), from the pinned go.mod/go.sum: the module cache is reused between
# runs, and nothing but the Go module proxy is reached.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
need=1.26.6  # the go line of go.mod: kairos-agent v2.31.4 asks for it
if ! command -v go >/dev/null 2>&1; then
	echo "tests/realstack/build.sh: Go $need or newer is needed to build the real yip and kairos-agent the tests run; install it (https://go.dev/dl) and put it on PATH" >&2
	exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
	echo "tests/realstack/build.sh: Go $have is too old: yip v1.25.1 and kairos-agent v2.31.4 need Go $need or newer" >&2
	exit 1
fi
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false" GOTOOLCHAIN=local
cd "$here"
go build -tags nogit,nounpack -o "$out/yip" github.com/mudler/yip
go build -o "$out/kairos-agent" github.com/kairos-io/kairos-agent/v2
go build -o "$out/busclient" ./busclient
cd third_party/provider-rke2
go build -o "$out/go-provider" .
