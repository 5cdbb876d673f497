#!/usr/bin/env bash
# Smoke test of the e2e toolchain built by build.sh:
#   KWOK cluster (binary runtime: local kube-apiserver, kube-controller-manager, kube-scheduler, etcd,
#   kwok-controller; all on 127.0.0.1) + a fake node + Argo Rollouts CRDs + the rollouts controller
#   on the host; a canary Rollout goes Healthy, its image is updated and it goes Healthy again at
#   revision 2; then the Pulumi binaries are checked. Everything is torn down on exit.
#
#   e2e/tools/smoke.sh              (builds missing tools first; a warm build is a no-op)
#   SMOKE_TIMEOUT=180 e2e/tools/smoke.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TIMEOUT="${SMOKE_TIMEOUT:-180}"                 # seconds per wait
METRICS_PORT="${SMOKE_METRICS_PORT:-8090}"       # rollouts controller metrics (binds 0.0.0.0)
HEALTHZ_PORT="${SMOKE_HEALTHZ_PORT:-8081}"       # rollouts controller healthz (binds 0.0.0.0)
START=$SECONDS

step() { printf '[smoke %3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { printf '[smoke %3ds] FAIL: %s\n' "$((SECONDS - START))" "$*" >&2; exit 1; }

BIN="$("$HERE/build.sh" | tail -n 1)"
CACHE="$(dirname "$BIN")"
export PATH="$BIN:$PATH"
CRDS="$(readlink -f "$CACHE/argo-rollouts-crds")"
for b in kubectl kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl \
         rollouts-controller kubectl-argo-rollouts pulumi pulumi-resource-kubernetes; do
  command -v "$b" >/dev/null || fail "$b not in $BIN"
done
[[ -d "$CRDS" ]] || fail "Argo Rollouts CRDs not found at $CACHE/argo-rollouts-crds"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/slo-smoke.XXXXXX")"
CLUSTER="slo-smoke-$$-$(date +%s)"
export KWOK_WORKDIR="$WORK/kwok"        # cluster state and logs stay in $WORK, not ~/.kwok
export KUBECONFIG="$WORK/kubeconfig"
export KUBECACHEDIR="$WORK/kube-cache"   # kubectl discovery cache, not ~/.kube/cache
CONTROLLER_PID=""

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$CONTROLLER_PID" ]] && kill -0 "$CONTROLLER_PID" 2>/dev/null; then
    kill "$CONTROLLER_PID"; wait "$CONTROLLER_PID" 2>/dev/null
  fi
  if [[ -d "$KWOK_WORKDIR/clusters/$CLUSTER" ]]; then
    if ((rc != 0)); then
      step "logs of the failed run:"
      tail -n 30 "$WORK/controller.log" 2>/dev/null | sed 's/^/  controller| /'
      for f in "$KWOK_WORKDIR/clusters/$CLUSTER"/logs/*.log; do
        [[ -f "$f" ]] && tail -n 8 "$f" | sed "s#^#  $(basename "$f")| #"
      done
    fi
    kwokctl delete cluster --name "$CLUSTER" >/dev/null 2>&1 || step "kwokctl delete cluster failed"
  fi
  rm -rf "$WORK"
  if ((rc == 0)); then step "PASS (${SECONDS}s total)"; else step "FAILED (rc=$rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for DESCRIPTION COMMAND... : poll COMMAND until it succeeds or $TIMEOUT seconds pass
wait_for() {
  local what=$1 deadline=$((SECONDS + TIMEOUT)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${TIMEOUT}s waiting for: $what"
    sleep 1
  done
  step "ok: $what"
}

# ---- cluster ----------------------------------------------------------------------------------
cat >"$WORK/kwokctl.yaml" <<'EOF'
kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  bindAddress: 127.0.0.1
EOF
step "creating KWOK cluster $CLUSTER (binary runtime, $(kube-apiserver --version))"
kwokctl create cluster --name "$CLUSTER" --config "$WORK/kwokctl.yaml" --runtime binary \
  --kube-apiserver-binary "$BIN/kube-apiserver" \
  --kube-controller-manager-binary "$BIN/kube-controller-manager" \
  --kube-scheduler-binary "$BIN/kube-scheduler" \
  --kwok-controller-binary "$BIN/kwok" \
  --etcd-binary "$BIN/etcd" \
  --kubeconfig "$KUBECONFIG" \
  --wait 120s --timeout 180s >"$WORK/kwokctl-create.log" 2>&1 \
  || { cat "$WORK/kwokctl-create.log" >&2; fail "kwokctl create cluster"; }
kubectl config use-context "kwok-$CLUSTER" >/dev/null
server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
step "cluster up at $server"
[[ "$server" == *"127.0.0.1"* ]] || fail "API server is not on 127.0.0.1: $server"
wait_for "default service account" kubectl get serviceaccount default -n default

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
wait_for "fake node Ready" kubectl wait --for=condition=Ready node/kwok-node-0 --timeout=2s

# ---- Argo Rollouts ----------------------------------------------------------------------------
kubectl apply --server-side -f "$CRDS" >/dev/null
wait_for "Rollout CRDs established" kubectl wait --for=condition=Established --timeout=2s \
  crd/rollouts.argoproj.io crd/analysisruns.argoproj.io crd/analysistemplates.argoproj.io \
  crd/clusteranalysistemplates.argoproj.io crd/experiments.argoproj.io

step "starting rollouts-controller ($(kubectl-argo-rollouts version --short 2>/dev/null || echo '?'))"
for port in "$METRICS_PORT" "$HEALTHZ_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is already in use (set SMOKE_METRICS_PORT / SMOKE_HEALTHZ_PORT)"
  fi
done
rollouts-controller --kubeconfig "$KUBECONFIG" --leader-elect=false \
  --metricsPort "$METRICS_PORT" --healthzPort "$HEALTHZ_PORT" >"$WORK/controller.log" 2>&1 &
CONTROLLER_PID=$!
wait_for "controller metrics on :$METRICS_PORT" \
  bash -c "kill -0 $CONTROLLER_PID && exec 3<>/dev/tcp/127.0.0.1/$METRICS_PORT"

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: smoke
  namespace: default
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
        - name: app
          image: registry.invalid/smoke:v1
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {duration: 5s}
EOF

# rollout_settled REVISION IMAGE: Healthy at REVISION, stable == current, 2 pods of the current
# template Running on the fake node with IMAGE
rollout_settled() {
  local rev=$1 image=$2 out
  out="$(kubectl get rollout smoke -o jsonpath='{.status.phase}|{.metadata.annotations.rollout\.argoproj\.io/revision}|{.status.stableRS}|{.status.currentPodHash}|{.status.availableReplicas}|{.metadata.generation}|{.status.observedGeneration}')"
  IFS='|' read -r phase r stable current avail gen observed <<<"$out"
  printf '%s\n' "$out" >"$WORK/rollout.status"
  [[ "$phase" == Healthy && "$r" == "$rev" && -n "$current" && "$stable" == "$current" \
     && "$avail" == 2 && "$observed" == "$gen" ]] || return 1
  local pods
  pods="$(kubectl get pods -l "app=smoke,rollouts-pod-template-hash=$current" \
    -o jsonpath='{range .items[*]}{.status.phase} {.spec.nodeName} {.spec.containers[0].image}{"\n"}{end}')"
  [[ "$(grep -c "^Running kwok-node-0 $image\$" <<<"$pods")" == 2 ]] || return 1
  [[ "$(kubectl get pods -l app=smoke --no-headers | wc -l)" == 2 ]]
}

wait_for "Rollout Healthy at revision 1 (2 pods Running on kwok-node-0)" \
  rollout_settled 1 registry.invalid/smoke:v1
kubectl-argo-rollouts --kubeconfig "$KUBECONFIG" set image smoke app=registry.invalid/smoke:v2 >/dev/null
step "image updated to registry.invalid/smoke:v2"
# observe the canary step on the way (best effort: a fast controller may pass it between polls)
deadline=$((SECONDS + TIMEOUT)); saw_pause=no
while ((SECONDS < deadline)); do
  st="$(kubectl get rollout smoke -o jsonpath='{.status.phase}/{.status.currentStepIndex}' 2>/dev/null || true)"
  [[ "$st" == Paused/* ]] && { saw_pause=yes; break; }
  rollout_settled 2 registry.invalid/smoke:v2 && break
  sleep 0.5
done
step "canary pause observed: $saw_pause"
wait_for "Rollout Healthy at revision 2 (new pods Running, old ones gone)" \
  rollout_settled 2 registry.invalid/smoke:v2
kubectl-argo-rollouts --kubeconfig "$KUBECONFIG" get rollout smoke --no-color | sed 's/^/  | /' | head -30
if command -v ss >/dev/null; then
  # Every component of this cluster must listen on loopback only (the rollouts controller binds its
  # metrics and healthz ports on 0.0.0.0, hard-coded upstream: listed, not failed). Only this
  # cluster's processes (kwokctl's pid files) are checked: other clusters may be running.
  pids="$(for f in "$KWOK_WORKDIR/clusters/$CLUSTER"/pids/*.pid; do
            [[ -f "$f" ]] && { tr -dc '0-9' <"$f"; printf '|'; }; done | sed 's/|$//')"
  [[ -n "$pids" ]] || fail "no pid files under $KWOK_WORKDIR/clusters/$CLUSTER/pids"
  listeners="$(ss -Hltnp 2>/dev/null | grep -E "pid=($pids|$CONTROLLER_PID)," || true)"
  awk '{split($6, p, "\""); print "  listen| " $4, p[2]}' <<<"$listeners"
  bad="$(grep -v "pid=$CONTROLLER_PID," <<<"$listeners" | awk '{print $4}' | grep -v '^127\.0\.0\.1:' || true)"
  [[ -z "$bad" ]] || fail "cluster components listen off loopback: $bad"
  step "ok: cluster components listen on 127.0.0.1 only"
fi
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null | grep -E '^rollout_info\{' | sed 's/^/  metrics| /' \
  || step "(curl not available or rollout_info missing)"

# ---- Pulumi -----------------------------------------------------------------------------------
step "pulumi: $(pulumi version)"
[[ -x "$BIN/pulumi-language-python-exec" ]] && step "pulumi-language-python-exec present"
if command -v pulumi-language-python >/dev/null; then
  pulumi-language-python --help >/dev/null 2>&1 || true
  step "pulumi-language-python present"
else
  step "pulumi-language-python: not built (module not served by the Go proxy)"
fi
# The provider is a gRPC plugin: started alone it prints the port it listens on.
pulumi-resource-kubernetes >"$WORK/provider.out" 2>"$WORK/provider.err" &
ppid=$!
wait_for "pulumi-resource-kubernetes serves gRPC" grep -Eq '^[0-9]+$' "$WORK/provider.out"
kill "$ppid"; wait "$ppid" 2>/dev/null || true

# ---- pulumi up through the Automation API (inline program: no language host process) -----------
# SMOKE_PULUMI_UP=0 skips it. The venv (PyPI) is cached beside the tools, keyed by the SDK pins.
if [[ "${SMOKE_PULUMI_UP:-1}" == 1 ]]; then
  PY_PULUMI="${SMOKE_PY_PULUMI:-3.272.0}"; PY_K8S="${SMOKE_PY_PULUMI_KUBERNETES:-4.34.2}"
  VENV="$CACHE/smoke-venv-pulumi-$PY_PULUMI-k8s-$PY_K8S"
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pulumi_kubernetes' 2>/dev/null; then
    step "creating $VENV (pip: pulumi==$PY_PULUMI pulumi-kubernetes==$PY_K8S)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "pulumi==$PY_PULUMI" "pulumi-kubernetes==$PY_K8S"
  fi
  mkdir -p "$WORK/pulumi-state" "$WORK/pulumi-home" "$WORK/pulumi-project"
  export PULUMI_BACKEND_URL="file://$WORK/pulumi-state" PULUMI_CONFIG_PASSPHRASE=smoke \
    PULUMI_HOME="$WORK/pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true \
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  step "pulumi up (inline Python program, ConfigMap on the KWOK cluster)"
  "$VENV/bin/python" - "$WORK" <<'EOF'
import subprocess, sys
import pulumi
import pulumi_kubernetes as k8s
from pulumi import automation as auto

work = sys.argv[1]

def program():
    cm = k8s.core.v1.ConfigMap("smoke", metadata={"name": "pulumi-smoke", "namespace": "default"},
                               data={"hello": "kwok"})
    pulumi.export("name", cm.metadata["name"])

stack = auto.create_or_select_stack(
    stack_name="smoke", project_name="slo-smoke", program=program,
    opts=auto.LocalWorkspaceOptions(work_dir=work + "/pulumi-project"))
up = stack.up(color="never")
assert up.summary.result == "succeeded", up.summary
assert up.outputs["name"].value == "pulumi-smoke", up.outputs
got = subprocess.check_output(["kubectl", "get", "configmap", "pulumi-smoke",
                               "-o", "jsonpath={.data.hello}"], text=True)
assert got == "kwok", got
print("  | up: %s, resources %s" % (up.summary.result, up.summary.resource_changes))
down = stack.destroy(color="never")
assert down.summary.result == "succeeded", down.summary
gone = subprocess.run(["kubectl", "get", "configmap", "pulumi-smoke"], capture_output=True)
assert gone.returncode != 0, "ConfigMap still there after destroy"
print("  | destroy: %s" % down.summary.result)
EOF
  step "ok: pulumi up/destroy against the KWOK cluster"
fi
