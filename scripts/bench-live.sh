#!/usr/bin/env bash
# make bench-live: where a live run's wall time goes, for the whole catalog on kind through real
# Envoy, on a fresh cluster and then on the same cluster reused. A benchmark, not a test: it fails
# only when a run fails. It prints `egressconf timing` of both runs side by side: the provisioning
# phases (cluster create, image loads, Istio install, stand-in and DNS), then the groups' setup,
# step actions, convergence, probes, holding windows, log reads and teardown, the median
# apply-to-converged time, and each group's wall time. Also the whole process's wall time, which
# adds the cleanup after the report (leak check, cluster delete).
#
# Usage: scripts/bench-live.sh                 (BENCH_FLAGS: more flags for both runs, e.g. --group G1)
# On this workplace (no registry) the images come from the caches scripts/ci-live.sh fills; run it
# once first. Elsewhere the runs pull Istio's published images as `make e2e` does.
set -euo pipefail
cd "$(dirname "$0")/.."
REPORTS=${REPORTS:-reports}
CLUSTER=${BENCH_CLUSTER:-egressconf-bench}
LC=${LOCALCLUSTER_HOME:-/var/tmp/localcluster}
LI=${LOCALISTIO_HOME:-/var/tmp/localistio}
PROXY_CACHE=${PROXY_CACHE:-/var/tmp/egressconf-proxyimage}
KR_CACHE=${KUBEROUTER_CACHE:-/var/tmp/egressconf-kuberouter}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
BENCH_FLAGS=${BENCH_FLAGS:-}
stamp=$(date -u +%Y%m%d-%H%M%S)

# One live run at a time on a machine (scripts/ci-live.sh takes the same lock).
exec 9>"${CI_LIVE_LOCK:-/var/tmp/egressconf-ci-live.lock}"
if ! flock -n 9; then
  echo "bench-live: another live run holds the lock: waiting for it (up to 1 hour)"
  flock -w 3600 9 || { echo "bench-live: the lock is still held after an hour" >&2; exit 1; }
fi

flags="--cluster-name $CLUSTER"
if [ -x "$SHARED/tools/kindnode/dockerd.sh" ] && [ -f "$LI/images/pilot.tar" ]; then
  # This workplace: the local node image and image archives, charts from the module.
  "$SHARED/tools/kindnode/dockerd.sh" 9>&-
  proxy=$(ls -t "$PROXY_CACHE"/out/proxyv2-*.tar | head -1)
  kr=$(ls -t "$KR_CACHE"/out/kube-router-*.tar | head -1)
  charts=$(go list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts
  flags="$flags --node-image local/kind-node:v1.34.4 --load-image-archive $LI/images/pilot.tar \
    --load-image-archive $proxy --load-image-archive $kr --apply-manifest $KR_CACHE/out/kube-router.yaml \
    --load-image-archive $LC/images/curl.tar --load-image-archive $LC/images/nginx.tar \
    --istio-charts $charts --istio-hub docker.io/local --istio-tag 1.31-dev \
    --curl-image docker.io/local/curl:1 --nginx-image docker.io/local/nginx:1"
fi
mkdir -p bin "$REPORTS"
go build -o bin/egressconf ./cmd/egressconf

delete_cluster() {
  # What `kind delete cluster` removes: the node containers (a run never deletes a cluster it reused).
  ids=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
}
if [ -n "$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER")" ]; then
  echo "bench-live: kind cluster $CLUSTER exists: delete it first (a fresh run needs no cluster)" >&2
  exit 1
fi
trap delete_cluster EXIT

run() { # run ID FLAGS...: one whole-catalog run; prints its process wall time
  local id=$1; shift
  local t0; t0=$(date +%s%N)
  # shellcheck disable=SC2086
  if ! bin/egressconf run --backend kind --reports "$REPORTS" --run-id "$id" $flags $BENCH_FLAGS "$@" > "$REPORTS/$id.log" 2>&1; then
    tail -30 "$REPORTS/$id.log"; echo "bench-live: run $id failed (log: $REPORTS/$id.log)" >&2; exit 1
  fi
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s: process wall time %d.%01ds (to the report, plus cleanup and leak check)\n' "$id" $((ms / 1000)) $((ms % 1000 / 100))
}
echo "== fresh cluster: create, load, install, the catalog (kept for the next run)"
run "bench-fresh-$stamp" --keep-cluster
echo "== the same cluster reused"
run "bench-reused-$stamp"
echo
bin/egressconf timing "$REPORTS/bench-fresh-$stamp" "$REPORTS/bench-reused-$stamp"
