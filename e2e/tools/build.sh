#!/usr/bin/env bash
# Build the local end-to-end toolchain from Go modules (Go module proxy only).
#
#   e2e/tools/build.sh [tool ...]     tools: kubernetes etcd kwok argo-rollouts notifycheck pulumi
#                                     pulumi-kubernetes
#                                     prometheus (what `make test` needs; the rest is for `make e2e`)
#                                     thanos (only `make fleet`; not built by default)
#                                     traefik (only e2e/test_traefik_dataplane.py; not built by default)
#
# Everything goes to ${E2E_TOOLS_CACHE:-$HOME/.cache/slo-canary-e2e}/<tool>-<version>-<go>/ (outside the
# work tree); a tool whose directory is complete is not rebuilt. The last line printed on stdout is
# the bin directory to put on PATH (symlinks to every built binary). Progress goes to stderr.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------------
# Go release every tool is built with, fetched once from the module proxy (golang.org/toolchain).
# go1.26.11 carries the standard library's fixes for every Go vulnerability database entry up to
# the snapshot tools/vulncheck.py checks against; the machine's own Go may be older.
GO_TOOLCHAIN=go1.26.11
K8S_VERSION=v1.36.3                # k8s.io/kubernetes; staging modules at v0.36.3
ETCD_VERSION=v3.6.16               # go.etcd.io/etcd/server/v3 (kwok v0.8.0 pairs k8s 1.36 with etcd 3.6)
KWOK_VERSION=v0.8.0                # sigs.k8s.io/kwok
ARGO_ROLLOUTS_VERSION=v1.9.1       # github.com/argoproj/argo-rollouts
PROMETHEUS_VERSION=v0.316.0        # github.com/prometheus/prometheus: v0.3XX.Y is Prometheus 3.XX.Y
THANOS_VERSION=v0.42.5             # github.com/thanos-io/thanos (sidecar, query, rule), for `make fleet`
# The project pins the Python SDK pulumi==3.272.0, but the proxy does not serve
# github.com/pulumi/pulumi/pkg/v3@v3.272.0 (403); v3.274.1 is the closest served CLI.
PULUMI_VERSION=v3.274.1
# github.com/pulumi/pulumi-kubernetes/provider/v4: the proxy serves no tagged v4.x.y (v4.34.2 is
# refused), only this pseudo-version, whose commit f47bc2d6f199 is the one tagged v4.25.0.
PULUMI_K8S_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
PULUMI_K8S_SDK_GO_VERSION=v4.25.0  # replaces the provider's `sdk/v4 => ../sdk`
PULUMI_K8S_VERSION=4.34.2          # version the provider reports (matches pulumi-kubernetes==4.34.2)
# github.com/traefik/traefik/v3 (delivery/routers.py TRAEFIK_MODULE), built from a patched copy
# (traefik-v3.7.13.patch): its forks github.com/containous/mux and containous/go-http-auth are
# refused by the proxy, so go.mod's replaces of them are dropped for these upstream versions.
TRAEFIK_VERSION=v3.7.13
TRAEFIK_MUX_VERSION=v1.8.1         # github.com/gorilla/mux (traefik requires it; the fork replaced it)
TRAEFIK_HTTP_AUTH_VERSION=v0.4.0   # github.com/abbot/go-http-auth, the only version served
# Not buildable here: github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 is not
# served by the proxy at any version (403 on its version list). See README.md.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${E2E_TOOLS_CACHE:-$HOME/.cache/slo-canary-e2e}"
BIN="$CACHE/bin"

export GOTOOLCHAIN=$GO_TOOLCHAIN  # exactly this release, whatever the local go is
export CGO_ENABLED=0
export GOFLAGS=-mod=mod    # wrapper modules resolve and record their requirements as they build
export GOWORK=off

log() { printf '%s\n' "$*" >&2; }
die() { log "build.sh: $*"; exit 1; }

command -v go >/dev/null || die "go not found on PATH"
command -v python3 >/dev/null || die "python3 not found on PATH"
GO_LOCAL_VERSION="$(go env GOVERSION)"; GO_LOCAL_VERSION="${GO_LOCAL_VERSION#go}"
mkdir -p "$CACHE" "$BIN"
# One build of a tool at a time (parallel make targets, two terminals); the Go module and build
# caches are shared by every build and safe for concurrent use.
lock_tool() {
  command -v flock >/dev/null || return 0
  exec 9>"$1.lock"
  flock -n 9 || { log "waiting for another build of $(basename "$1") ..."; flock 9; }
}

# module_info MODULE@VERSION FIELD  -> Dir or GoMod of the downloaded module
module_info() {
  go mod download -json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if d.get("Error"):
    sys.exit("go mod download %s: %s" % (sys.argv[1], d["Error"]))
print(d[sys.argv[2]])' "$1" "$2"
}

# replace_flags GOMOD LOCAL_VERSION LOCAL_REGEX
# Prints one `-replace=...` flag per line for `go mod edit`: replaces that name a module version are
# copied as they are; local-path replaces (=> ../sdk, => ./staging/...) whose old path matches
# LOCAL_REGEX become the same module at LOCAL_VERSION; other local-path replaces are dropped.
replace_flags() {
  go mod edit -json "$1" | python3 -c '
import json, re, sys
d = json.load(sys.stdin)
local_version, local_re = sys.argv[1], re.compile(sys.argv[2])
for r in d.get("Replace") or []:
    old, new = r["Old"], r["New"]
    o = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if new.get("Version"):
        print("-replace=%s=%s@%s" % (o, new["Path"], new["Version"]))
    elif local_re.fullmatch(old["Path"]):
        print("-replace=%s=%s@%s" % (o, old["Path"], local_version))
    else:
        print("dropped local replace %s => %s" % (o, new["Path"]), file=sys.stderr)
' "$2" "$3"
}

# make_wrapper DIR MODULE VERSION LOCAL_VERSION LOCAL_REGEX
# A throw-away main module that requires MODULE@VERSION and carries its replaces (go install
# refuses modules with replace directives; replaces only take effect in the main module).
make_wrapper() {
  local dir=$1 mod=$2 ver=$3 lver=$4 lre=$5 gomod
  gomod="$(module_info "$mod@$ver" GoMod)"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module slo-canary-e2e/toolwrapper\n\ngo %s\n\nrequire %s %s\n' \
    "$GO_LOCAL_VERSION" "$mod" "$ver" >"$dir/go.mod"
  local flags=()
  mapfile -t flags < <(replace_flags "$gomod" "$lver" "$lre")
  if ((${#flags[@]})); then (cd "$dir" && go mod edit "${flags[@]}"); fi
}

# link_bins DIR NAME... : symlink built binaries into $BIN
link_bins() {
  local dir=$1; shift
  local b
  for b in "$@"; do ln -sfn "$dir/$b" "$BIN/$b"; done
}

# run_tool NAME VERSION DIR BUILD_FN BINARIES...
run_tool() {
  local name=$1 ver=$2 dir=$3 fn=$4; shift 4
  local start=$SECONDS b ok=1
  lock_tool "$dir"
  for b in "$@"; do [[ -x "$dir/$b" ]] || ok=0; done
  if [[ $ok == 1 && -f "$dir/.complete" ]]; then
    link_bins "$dir" "$@"
    log "$name $ver cached ($((SECONDS - start))s)"
    return 0
  fi
  log "building $name $ver ..."
  rm -rf "$dir"; mkdir -p "$dir"
  # A subshell outside any `||`/`if`, so that errexit stops the build function at its first error.
  local rc=0 ticker
  # A line a minute, so that a cold build (minutes) is visibly alive.
  (exec 9>&-; while sleep 60; do log "  still building $name ($((SECONDS - start))s; log: $dir.build.log)"; done) &
  ticker=$!
  set +e
  (set -e; "$fn" "$dir") >"$dir.build.log" 2>&1
  rc=$?
  set -e
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  if ((rc != 0)); then
    tail -n 40 "$dir.build.log" >&2
    die "building $name $ver failed (exit $rc; full log: $dir.build.log)"
  fi
  for b in "$@"; do [[ -x "$dir/$b" ]] || die "$name: $dir/$b missing after build"; done
  date -u +%FT%TZ >"$dir/.complete"
  mv "$dir.build.log" "$dir/build.log"
  link_bins "$dir" "$@"
  log "built $name $ver in $((SECONDS - start))s"
}

# ---- tools ---------------------------------------------------------------------------------------
build_kubernetes() {
  local out=$1 w="$1/.wrapper" minor
  minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
  make_wrapper "$w" k8s.io/kubernetes "$K8S_VERSION" "v0.${K8S_VERSION#v1.}" 'k8s\.io/[a-z0-9-]+'
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$w" && go build -trimpath -ldflags "$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  "$out/kube-apiserver" --version
  "$out/kubectl" version --client
}

build_etcd() {
  local out=$1 w="$1/.wrapper"
  make_wrapper "$w" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" \
    'go\.etcd\.io/etcd/(api|client/pkg|client|pkg)/v3'
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  "$out/etcd" --version
}

build_kwok() {
  local out=$1
  GOBIN="$out" GOFLAGS='' go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  "$out/kwokctl" --version
}

build_argo_rollouts() {
  local out=$1 w="$1/.wrapper" src m=github.com/argoproj/argo-rollouts
  make_wrapper "$w" "$m" "$ARGO_ROLLOUTS_VERSION" none '^$'
  src="$(module_info "$m@$ARGO_ROLLOUTS_VERSION" Dir)"
  local ld="-s -w -X $m/utils/version.version=${ARGO_ROLLOUTS_VERSION#v}"
  ld+=" -X $m/utils/version.gitTag=$ARGO_ROLLOUTS_VERSION -X $m/utils/version.gitCommit=module-proxy"
  ld+=" -X $m/utils/version.gitTreeState=clean"
  (cd "$w" && go build -trimpath -ldflags "$ld" -o "$out/rollouts-controller" "$m/cmd/rollouts-controller")
  mkdir -p "$out/crds"
  cp "$src"/manifests/crds/*-crd.yaml "$out/crds/"
  chmod 0644 "$out"/crds/*.yaml
  # The kubectl plugin embeds the dashboard UI (server/static/*, built by npm upstream), which is not
  # in the module zip, and -overlay may not touch GOMODCACHE: build it from a writable copy of the
  # module (in the cache dir) with a placeholder page, through a second wrapper that replaces the
  # module with that copy.
  local wp="$1/.wrapper-plugin"
  rm -rf "$wp"; cp -r "$w" "$wp"
  cp -r "$src" "$wp/argo-rollouts"
  chmod -R u+w "$wp/argo-rollouts"
  rm -rf "$wp/argo-rollouts/docs" "$wp/argo-rollouts/ui"
  mkdir -p "$wp/argo-rollouts/server/static"
  printf '<!doctype html><title>Argo Rollouts</title><p>dashboard UI not built (Go module build)</p>\n' \
    >"$wp/argo-rollouts/server/static/index.html"
  (cd "$wp" && go mod edit -replace="$m=./argo-rollouts" \
    && go build -trimpath -ldflags "$ld" -o "$out/kubectl-argo-rollouts" "$m/cmd/kubectl-argo-rollouts")
  "$out/rollouts-controller" --version 2>&1 | tail -n 1 || true
  "$out/kubectl-argo-rollouts" version
}

build_pulumi() {
  local out=$1 w="$1/.wrapper" sdk
  make_wrapper "$w" github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" "$PULUMI_VERSION" \
    'github\.com/pulumi/pulumi/sdk/v3'
  (cd "$w" && go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  # The shim the Python language host runs; shipped for when a language host is available.
  sdk="$(module_info "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" Dir)"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
  "$out/pulumi" version
}

build_pulumi_kubernetes() {
  local out=$1 w="$1/.wrapper" src m=github.com/pulumi/pulumi-kubernetes/provider/v4
  make_wrapper "$w" "$m" "$PULUMI_K8S_MODULE_VERSION" "$PULUMI_K8S_SDK_GO_VERSION" \
    'github\.com/pulumi/pulumi-kubernetes/sdk/v4'
  src="$(module_info "$m@$PULUMI_K8S_MODULE_VERSION" Dir)/cmd/pulumi-resource-kubernetes"
  # main.go embeds schema-embed.json and terraform-mapping-embed.json, which its generate.go makes
  # from schema.json and terraform-mapping.json (not in the module zip). -overlay may not touch
  # GOMODCACHE, so the 10-line main package is copied into the wrapper module beside its generated
  # files; everything it imports still comes from the module.
  local cmd="$w/cmd/pulumi-resource-kubernetes"
  mkdir -p "$cmd"
  cp "$src/main.go" "$src/generate.go" "$src/schema.json" "$src/terraform-mapping.json" "$cmd/"
  chmod u+w "$cmd"/*
  (cd "$cmd" && VERSION="$PULUMI_K8S_VERSION" go run generate.go)
  (cd "$w" && go build -trimpath -ldflags "-s -w -X $m/pkg/version.Version=$PULUMI_K8S_VERSION" \
    -o "$out/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes)
  ls -l "$out/pulumi-resource-kubernetes"
}

# Server and promtool, version stamped. Built without the cloud service discoveries
# (-tags remove_all_sd keeps static, file and http SD): nothing here discovers targets otherwise,
# the query engine and rule evaluation are the same, and the build is a fraction of the size.
# Through a wrapper module that raises golang.org/x/net and x/crypto to their fixed versions
# (v0.316.0 requires x/net v0.61.0 and x/crypto v0.58.0: GO-2026-6860, -6866, -5932).
PROMETHEUS_RAISE=(golang.org/x/net@v0.62.0 golang.org/x/crypto@v0.59.0)
build_prometheus() {
  local out=$1 w="$1/.wrapper" m=github.com/prometheus/prometheus v=${PROMETHEUS_VERSION#v0.3}
  local c=github.com/prometheus/common/version
  local ld="-s -w -X $c.Version=3.$v -X $c.Revision=$PROMETHEUS_VERSION -X $c.Branch=module-proxy"
  ld+=" -X $c.BuildUser=slo-canary -X $c.BuildDate=module-proxy"
  make_wrapper "$w" "$m" "$PROMETHEUS_VERSION" none '^$'
  (cd "$w" && go get "${PROMETHEUS_RAISE[@]}" \
    && go build -trimpath -tags remove_all_sd -ldflags "$ld" -o "$out/" "$m/cmd/prometheus" "$m/cmd/promtool")
  "$out/prometheus" --version
  "$out/promtool" --version
}

# One binary for sidecar, query and rule, version stamped, through a wrapper module that carries
# Thanos' own replaces and raises the dependencies that have fixes for the vulnerabilities found in
# the binary (tools/vulncheck.py; v0.42.5 requires x/net v0.56.0, grpc v1.81.1, otel v1.43.0 ...).
# It requires its own Prometheus (v0.309.x) as a library, with the label layout its release build
# picks (`-tags slicelabels`, .promu.yml: Thanos casts its protobuf labels to Prometheus' in place;
# the default layout panics in Query). The Go module and build caches are the ones every other
# tool here shares.
THANOS_RAISE=(golang.org/x/net@v0.62.0 golang.org/x/crypto@v0.59.0 google.golang.org/grpc@v1.83.2
  go.opentelemetry.io/otel@v1.45.0 go.opentelemetry.io/otel/sdk@v1.45.0
  go.opentelemetry.io/otel/bridge/opentracing@v1.45.0
  go.opentelemetry.io/otel/exporters/otlp/otlptrace@v1.45.0
  go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc@v1.45.0
  go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp@v1.45.0
  go.mongodb.org/mongo-driver@v1.17.7 github.com/klauspost/compress@v1.20.2)
build_thanos() {
  local out=$1 w="$1/.wrapper" m=github.com/thanos-io/thanos
  local c=github.com/prometheus/common/version
  local ld="-s -w -X $c.Version=${THANOS_VERSION#v} -X $c.Revision=$THANOS_VERSION -X $c.Branch=module-proxy"
  ld+=" -X $c.BuildUser=slo-canary -X $c.BuildDate=module-proxy"
  make_wrapper "$w" "$m" "$THANOS_VERSION" none '^$'
  (cd "$w" && go get "${THANOS_RAISE[@]}" \
    && go build -trimpath -tags netgo,slicelabels -ldflags "$ld" -o "$out/thanos" "$m/cmd/thanos")
  "$out/thanos" --version
}

# The notification engine Argo Rollouts pins, run offline on a ConfigMap (e2e/tools/notifycheck):
# built in a wrapper that requires the same argo-rollouts module, so the module graph and the
# compiled packages are the controller's.
build_notifycheck() {
  local out=$1 w="$1/.wrapper"
  make_wrapper "$w" github.com/argoproj/argo-rollouts "$ARGO_ROLLOUTS_VERSION" none '^$'
  mkdir -p "$w/notifycheck"
  cp "$HERE/notifycheck/main.go" "$w/notifycheck/"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/notifycheck" ./notifycheck)
}

# Traefik v3, from a writable copy of the module (main module there, so its own go.mod and go.sum
# resolve everything) patched by traefik-v3.7.13.patch (what and why: the patch's header and
# README.md). The docs, integration tests and web UI sources are left out of the copy; the binary
# embeds the module's webui/static as it is (a placeholder page: the UI is an npm build).
# Dependencies with fixes for the vulnerabilities found in the binary (tools/vulncheck.py; v3.7.13
# requires x/net v0.58.0, x/crypto v0.56.0, klauspost/compress v1.19.1, brotli v1.2.2, ...) are
# raised to the fixed versions, by requirements written into go.mod. A changed go.mod makes the go
# command read the go.mod of every module it requires, and the proxy refuses those of five SDKs
# only lego's DNS providers import (not built, see the patch): their (indirect) requirements are
# dropped.
TRAEFIK_RAISE=(golang.org/x/net@v0.62.0 golang.org/x/crypto@v0.59.0
  github.com/klauspost/compress@v1.20.2 github.com/andybalholm/brotli@v1.2.7
  knative.dev/pkg@v0.0.0-20260531000007-52dbd5ece63f)
TRAEFIK_DROP=(github.com/nrdcg/oci-go-sdk/common/v1065 github.com/nrdcg/oci-go-sdk/dns/v1065
  github.com/sacloud/sacloud-sdk-go github.com/ucloud/ucloud-sdk-go
  github.com/yandex-cloud/go-sdk/services/dns)
build_traefik() {
  local out=$1 m=github.com/traefik/traefik/v3 src w="$1/.src"
  src="$(module_info "$m@$TRAEFIK_VERSION" Dir)"
  rm -rf "$w"; cp -r "$src" "$w"; chmod -R u+w "$w"
  rm -rf "$w/docs" "$w/integration" "$w/webui/src" "$w/webui/test"
  patch -p1 -d "$w" --forward --batch <"$HERE/traefik-$TRAEFIK_VERSION.patch"
  local ld="-s -w -X $m/pkg/version.Version=${TRAEFIK_VERSION#v} -X $m/pkg/version.BuildDate=module-proxy"
  (cd "$w" && go mod edit -dropreplace=github.com/abbot/go-http-auth -dropreplace=github.com/gorilla/mux \
      -require="github.com/abbot/go-http-auth@$TRAEFIK_HTTP_AUTH_VERSION" \
      -require="github.com/gorilla/mux@$TRAEFIK_MUX_VERSION" "${TRAEFIK_RAISE[@]/#/-require=}" \
      "${TRAEFIK_DROP[@]/#/-droprequire=}" \
    && go build -trimpath -ldflags "$ld" -o "$out/traefik" ./cmd/traefik)
  rm -rf "$w"
  "$out/traefik" version
}

# ---- main ----------------------------------------------------------------------------------------
ALL=(kubernetes etcd kwok argo-rollouts notifycheck pulumi pulumi-kubernetes prometheus)
TOOLS=("$@")
((${#TOOLS[@]})) || TOOLS=("${ALL[@]}")
TOTAL_START=$SECONDS
for t in "${TOOLS[@]}"; do
  case "$t" in
    kubernetes) run_tool kubernetes "$K8S_VERSION" "$CACHE/kubernetes-$K8S_VERSION-$GO_TOOLCHAIN" build_kubernetes \
                  kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    etcd) run_tool etcd "$ETCD_VERSION" "$CACHE/etcd-$ETCD_VERSION-$GO_TOOLCHAIN" build_etcd etcd ;;
    kwok) run_tool kwok "$KWOK_VERSION" "$CACHE/kwok-$KWOK_VERSION-$GO_TOOLCHAIN" build_kwok kwok kwokctl ;;
    argo-rollouts) run_tool argo-rollouts "$ARGO_ROLLOUTS_VERSION" "$CACHE/argo-rollouts-$ARGO_ROLLOUTS_VERSION-$GO_TOOLCHAIN" \
                     build_argo_rollouts rollouts-controller kubectl-argo-rollouts ;;
    pulumi) run_tool pulumi "$PULUMI_VERSION" "$CACHE/pulumi-$PULUMI_VERSION-$GO_TOOLCHAIN" build_pulumi \
              pulumi pulumi-language-python-exec ;;
    pulumi-kubernetes) run_tool pulumi-kubernetes "$PULUMI_K8S_VERSION" \
                         "$CACHE/pulumi-kubernetes-$PULUMI_K8S_VERSION-${PULUMI_K8S_MODULE_VERSION##*-}-$GO_TOOLCHAIN" \
                         build_pulumi_kubernetes pulumi-resource-kubernetes ;;
    prometheus) run_tool prometheus "$PROMETHEUS_VERSION" "$CACHE/prometheus-$PROMETHEUS_VERSION-$GO_TOOLCHAIN" \
                  build_prometheus prometheus promtool ;;
    notifycheck) run_tool notifycheck "$ARGO_ROLLOUTS_VERSION" \
                   "$CACHE/notifycheck-$ARGO_ROLLOUTS_VERSION-$GO_TOOLCHAIN-$(sha256sum "$HERE/notifycheck/main.go" | cut -c1-12)" \
                   build_notifycheck notifycheck ;;
    thanos) run_tool thanos "$THANOS_VERSION" "$CACHE/thanos-$THANOS_VERSION-$GO_TOOLCHAIN" build_thanos thanos ;;
    traefik) run_tool traefik "$TRAEFIK_VERSION" \
               "$CACHE/traefik-$TRAEFIK_VERSION-$GO_TOOLCHAIN-$(sha256sum "$HERE/traefik-$TRAEFIK_VERSION.patch" | cut -c1-12)" \
               build_traefik traefik ;;
    *) die "unknown tool '$t' (known: ${ALL[*]} thanos traefik)" ;;
  esac
done
# Paths callers need besides PATH.
ln -sfn "$CACHE/argo-rollouts-$ARGO_ROLLOUTS_VERSION-$GO_TOOLCHAIN/crds" "$CACHE/argo-rollouts-crds" 2>/dev/null || true
log "total $((SECONDS - TOTAL_START))s"
echo "$BIN"
