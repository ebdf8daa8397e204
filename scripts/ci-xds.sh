#!/usr/bin/env bash
# The differential of the three oracles (issue #13) from two runs: the offline backend (ci-sim,
# Istio's control plane in process) and scripts/ci-live.sh's whole-catalog kind run
# (reports/e2e-kind-catalog), which runs with --probe curl,xds: every check observed with curl
# through upstream Envoy and predicted from the live istiod's xDS on the same converged state.
# That one run holds two oracles, so no kind cluster of its own is created here for a --probe xds
# run (it cost about 8 minutes of CI). Every ID is compared across the three answers and must
# agree (DENYNS-05/06 are "not compared": neither prediction models NetworkPolicy), and
# reports/differential.html is written.
# Run scripts/ci-live.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPORTS=${REPORTS:-reports}
t0=$(date +%s)
step() { echo "[$(date +%T) +$(( $(date +%s) - t0 ))s] $*"; }

DUAL="$REPORTS/e2e-kind-catalog"
if [ ! -f "$DUAL/results.json" ]; then
  echo "ci-xds.sh: $DUAL/results.json not found: run scripts/ci-live.sh first (its kind-catalog run is --probe curl,xds)" >&2
  exit 1
fi
mkdir -p bin "$REPORTS"
[ -x bin/egressconf ] || go build -o bin/egressconf ./cmd/egressconf

# The offline backend with the istiod settings the live run here uses (the proxy image runs
# upstream Envoy, so --istio-profile auto picked upstream-envoy there).
step "offline backend: the whole catalog (--istio-profile upstream-envoy)"
bin/egressconf run --backend sim --istio-profile upstream-envoy --reports "$REPORTS" --run-id ci-sim > "$REPORTS/ci-sim.log"
grep -E "passed, .* skipped" "$REPORTS/ci-sim.log"  # the verdict line (the last line is "reports: DIR")

# The dual run must carry the live istiod's predictions: compare lists it as an oracle of its own.
step "the three oracles per ID: offline prediction, the live istiod's prediction, upstream Envoy's observation"
bin/egressconf compare "$REPORTS/ci-sim" "$DUAL" | tee "$REPORTS/ci-compare.log"
grep -q "e2e-kind-catalog\[predicted-live-control-plane\]: predicted-live-control-plane" "$REPORTS/ci-compare.log" || {
  echo "ci-xds.sh: $DUAL carries no predictions of the live control plane (was it run with --probe curl,xds?)" >&2
  exit 1
}

step "differential of the three oracles: $REPORTS/differential.html"
bin/egressconf compare --html "$REPORTS/differential.html" "$REPORTS/ci-sim" "$DUAL"

# The feature corpus (suites/corpus, issue #12): its kind run (TestKindE2E kind-corpus, --probe
# curl,xds) is the check; offline, the model must agree with each ID or say it is out of model.
CORPUS_DUAL="$REPORTS/e2e-kind-corpus"
if [ ! -f "$CORPUS_DUAL/results.json" ]; then
  echo "ci-xds.sh: $CORPUS_DUAL/results.json not found: run scripts/ci-live.sh first (its kind-corpus run)" >&2
  exit 1
fi
step "offline backend: the feature corpus (--catalog suites/corpus)"
if ! bin/egressconf run --backend sim --istio-profile upstream-envoy --catalog suites/corpus --reports "$REPORTS" --run-id ci-sim-corpus > "$REPORTS/ci-sim-corpus.log"; then
  tail -40 "$REPORTS/ci-sim-corpus.log"; echo "ci-xds.sh: the offline backend failed a corpus ID (a model bug)" >&2; exit 1
fi
grep -E "passed, .* skipped" "$REPORTS/ci-sim-corpus.log"
step "corpus: offline prediction, the live istiod's prediction, upstream Envoy's observation per ID"
# compare exits 1 when any answer differs. In the corpus the one class allowed is "model gap": a
# prediction the model declined as out of model, with its reason (docs/corpus.md). Any other class
# (a prediction that disagrees with Envoy, a drift) fails.
set +e
bin/egressconf compare "$REPORTS/ci-sim-corpus" "$CORPUS_DUAL" > "$REPORTS/ci-compare-corpus.log"
rc=$?
set -e
cat "$REPORTS/ci-compare-corpus.log"
if [ "$rc" != 0 ]; then
  classes=$(grep '^classes:' "$REPORTS/ci-compare-corpus.log" | sed 's/^classes: *//')
  if [ -z "$classes" ] || echo "$classes" | tr ',' '\n' | grep -vqE '^ *model gap [0-9]+ *$'; then
    echo "ci-xds.sh: the corpus's oracles differ beyond model gaps (classes: ${classes:-none}; compare exit $rc)" >&2
    exit 1
  fi
  echo "ci-xds.sh: the corpus differs only where a model says out of model (classes: $classes)"
fi
# The same comparison as a page; it exits as the one above did (checked there).
set +e
bin/egressconf compare --html "$REPORTS/differential-corpus.html" "$REPORTS/ci-sim-corpus" "$CORPUS_DUAL" > /dev/null
hrc=$?
set -e
if [ "$hrc" != "$rc" ] || [ ! -s "$REPORTS/differential-corpus.html" ]; then
  echo "ci-xds.sh: compare --html exited $hrc (the comparison exited $rc) or wrote no $REPORTS/differential-corpus.html" >&2
  exit 1
fi
