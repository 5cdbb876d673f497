#!/usr/bin/env bash
# Build the peer SLO generator Sloth (github.com/slok/sloth, main package cmd/sloth) from the Go
# module proxy, for the benchmarks in bench/. Nothing of Sloth is kept in the work tree.
#
#   bench/peers/build_sloth.sh
#
# The binary goes to ${BENCH_CACHE:-$HOME/.cache/slo-canary-bench}/sloth-v0.16.0/sloth. A cached
# binary is reused as it is (no network, no go command). Progress goes to stderr; the last line on
# stdout is the path of the binary.
set -euo pipefail

SLOTH_MODULE=github.com/slok/sloth
SLOTH_VERSION=v0.16.0

CACHE="${BENCH_CACHE:-$HOME/.cache/slo-canary-bench}"
DEST="$CACHE/sloth-$SLOTH_VERSION"
BINARY="$DEST/sloth"

log() { printf '%s\n' "$*" >&2; }
die() { log "build_sloth.sh: $*"; exit 1; }

if [[ -x "$BINARY" ]]; then
  log "sloth $SLOTH_VERSION: cached"
  printf '%s\n' "$BINARY"
  exit 0
fi

command -v go >/dev/null || die "go not found on PATH"

export GOTOOLCHAIN=local   # never download another Go toolchain
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS=-buildvcs=false

mkdir -p "$DEST"
WORK="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Sloth prints its version from internal/info.Version; set it as its own release build does.
LDFLAGS="-s -w -X $SLOTH_MODULE/internal/info.Version=$SLOTH_VERSION"

log "sloth $SLOTH_VERSION: go install $SLOTH_MODULE/cmd/sloth@$SLOTH_VERSION"
if ! GOBIN="$WORK/bin" go install -ldflags "$LDFLAGS" "$SLOTH_MODULE/cmd/sloth@$SLOTH_VERSION" >&2; then
  # `go install pkg@version` refuses modules whose go.mod has replace directives; build through a
  # throw-away wrapper module (in the cache, outside the work tree) that requires Sloth instead.
  log "sloth $SLOTH_VERSION: go install failed; building through a wrapper module"
  mkdir -p "$WORK/wrapper"
  (
    cd "$WORK/wrapper"
    go mod init slo-canary-bench/sloth-wrapper >&2
    cat > tools.go <<EOF
//go:build tools

package tools

import _ "$SLOTH_MODULE/cmd/sloth"
EOF
    GOFLAGS="-mod=mod -buildvcs=false" go get "$SLOTH_MODULE@$SLOTH_VERSION" >&2
    GOFLAGS="-mod=mod -buildvcs=false" go build -ldflags "$LDFLAGS" -o "$WORK/bin/sloth" \
      "$SLOTH_MODULE/cmd/sloth" >&2
  )
fi

[[ -x "$WORK/bin/sloth" ]] || die "no sloth binary was built"
mv -f "$WORK/bin/sloth" "$BINARY"
log "sloth $SLOTH_VERSION: built $("$BINARY" version 2>/dev/null | tail -n 1)"
printf '%s\n' "$BINARY"
