#!/usr/bin/env bash
# The control-plane probe against a real istiod (issue "control-plane probe"): the same run as
# `make e2e` — a kind cluster created through the kind library from the local node image, Istio
# installed through egressconf's Helm path from the module's charts with hub/tag overrides (a real
# istiod and its validating webhook; the proxies run upstream Envoy), fixtures, stand-in hosts and DNS,
# the ASM translation applied to a real API server, cleanup and leak check — with --probe xds: every
# request predicted from the xDS that istiod pushes to virtual proxies of the pods. Then the results
# are compared per ID with the offline backend's, and must agree.
# Run scripts/ci-live.sh first (it prepares the Docker engine, node image and image archives).
set -euo pipefail
cd "$(dirname "$0")/.."
LC=${LOCALCLUSTER_HOME:-/var/tmp/localcluster}
LI=${LOCALISTIO_HOME:-/var/tmp/localistio}
NODE_IMAGE=${NODE_IMAGE:-local/kind-node:v1.34.4}
REPORTS=${REPORTS:-reports}
t0=$(date +%s)
step() { echo "[$(date +%T) +$(( $(date +%s) - t0 ))s] $*"; }

SHARED=${SHARED:-$(cd .. && pwd)/shared}
step "Docker engine (kindnode/dockerd.sh)"
"$SHARED/tools/kindnode/dockerd.sh"

ISTIO_MOD=$(go list -m -f '{{.Dir}}' istio.io/istio)
PROXY_ARCHIVE=$(go run ./internal/testmesh/cmd/proxyimage -out "${PROXY_CACHE:-/var/tmp/egressconf-proxyimage}/out")
mkdir -p bin "$REPORTS"
[ -x bin/egressconf ] || go build -o bin/egressconf ./cmd/egressconf

# The offline backend with the istiod settings the live runs here use (the proxy image runs
# upstream Envoy, so --istio-profile auto picks upstream-envoy there).
step "offline backend: the whole catalog (--istio-profile upstream-envoy)"
bin/egressconf run --backend sim --istio-profile upstream-envoy --reports "$REPORTS" --run-id ci-sim > "$REPORTS/ci-sim.log"
grep -E "passed, .* skipped" "$REPORTS/ci-sim.log"  # the verdict line (the last line is "reports: DIR")

step "kind + real istiod: the whole catalog with --probe xds (from kind create to the report)"
start=$(date +%s)
# The main job itself (make e2e), with this workplace's node image, images and charts given by flags.
make e2e REPORTS="$REPORTS" E2E_FLAGS="--cluster-name egressconf-xds --node-image $NODE_IMAGE \
  --load-image-archive $LI/images/pilot.tar --load-image-archive $PROXY_ARCHIVE \
  --load-image-archive $LC/images/curl.tar --load-image-archive $LC/images/nginx.tar \
  --istio-charts $ISTIO_MOD/manifests/charts --istio-hub docker.io/local --istio-tag 1.31-dev \
  --curl-image docker.io/local/curl:1 --nginx-image docker.io/local/nginx:1 \
  --probe xds --run-id ci-xds" > "$REPORTS/ci-xds.log" 2>&1 || { tail -40 "$REPORTS/ci-xds.log"; exit 1; }
echo "whole catalog with --probe xds, kind create to report: $(( $(date +%s) - start )) s"
grep -E "passed, .* skipped" "$REPORTS/ci-xds.log"
grep -E "^== (kind cluster|leak check)" "$REPORTS/ci-xds.log" || true

step "per-ID agreement of the live control plane's predictions with the offline backend's"
bin/egressconf compare "$REPORTS/ci-sim" "$REPORTS/ci-xds"

# The observations through real Envoy (scripts/ci-live.sh's whole-catalog run) against the model.
if [ -f "$REPORTS/e2e-kind-catalog/results.json" ]; then
  step "per-ID agreement of the observations through upstream Envoy with the offline backend's predictions"
  bin/egressconf compare "$REPORTS/ci-sim" "$REPORTS/e2e-kind-catalog"
  # The three oracles side by side, each disagreement classified (issue #13): offline prediction,
  # the live istiod's prediction, and what upstream Envoy did.
  step "differential of the three oracles: $REPORTS/differential.html"
  bin/egressconf compare --html "$REPORTS/differential.html" "$REPORTS/ci-sim" "$REPORTS/ci-xds" "$REPORTS/e2e-kind-catalog"
fi
