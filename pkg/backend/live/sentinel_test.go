package live

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/xdsprobe"
)

func getSentinel(t *testing.T, b *Backend) *networkingv1.ServiceEntry {
	t.Helper()
	se, err := b.istio.NetworkingV1().ServiceEntries(xdsprobe.SentinelNamespace).Get(context.Background(), xdsprobe.SentinelName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return se
}

// The sentinel goes through Istio's typed clientset with the run's labels, each bump moves its
// host to the next generation, and the cleanup removes it.
func TestSentinelBumpLabelsAndCleanup(t *testing.T) {
	b := testBackend(t, nil)
	ctx := context.Background()
	for want := 1; want <= 2; want++ {
		gen, err := b.bumpSentinel(ctx)
		if err != nil || gen != want {
			t.Fatalf("bump %d: gen %d, %v", want, gen, err)
		}
		se := getSentinel(t, b)
		if got := se.Spec.GetHosts(); len(got) != 1 || got[0] != xdsprobe.SentinelHost(want) {
			t.Fatalf("generation %d: hosts %v", want, got)
		}
		if se.Labels[fixtures.LabelManagedBy] != fixtures.ManagedBy || se.Labels[fixtures.LabelRun] != "run-1" || len(se.Labels) != 2 {
			t.Fatalf("labels %v", se.Labels)
		}
	}
	if len(b.cleanups) != 1 || b.cleanups[0].name != "sentinel" {
		t.Fatalf("cleanups %v, want the sentinel's once", b.cleanups)
	}
	if err := b.cleanups[0].f(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.istio.NetworkingV1().ServiceEntries(xdsprobe.SentinelNamespace).Get(ctx, xdsprobe.SentinelName, metav1.GetOptions{}); err == nil {
		t.Fatal("sentinel left after its cleanup")
	}
	// Already gone: nothing to do, no error.
	if deleted, err := b.deleteSentinel(ctx); deleted || err != nil {
		t.Fatalf("deleted %v, %v", deleted, err)
	}
}

// A sentinel this run did not create is never overwritten nor deleted, and the error is the same
// OwnershipError createOwned gives.
func TestSentinelRefusesForeign(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"team": "mesh"}, `refusing to overwrite ServiceEntry istio-system/egressconf-sentinel: it exists and was not created by egressconf run run-1 (no egressconf.io/run=run-1 label)`},
		{map[string]string{fixtures.LabelManagedBy: fixtures.ManagedBy, fixtures.LabelRun: "run-0"}, `refusing to overwrite ServiceEntry istio-system/egressconf-sentinel: it belongs to egressconf run "run-0", not this run (run-1)`},
	} {
		b := testBackend(t, nil)
		theirs := xdsprobe.Sentinel(7, tc.labels)
		b.istio = istiofake.NewSimpleClientset(theirs)
		ctx := context.Background()
		_, err := b.bumpSentinel(ctx)
		var oe *OwnershipError
		if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), "sentinel: "+tc.want) {
			t.Fatalf("bump over %v: %v", tc.labels, err)
		}
		if _, err := b.deleteSentinel(ctx); !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Fatalf("delete of %v: %v", tc.labels, err)
		}
		se := getSentinel(t, b)
		if se.Spec.GetHosts()[0] != xdsprobe.SentinelHost(7) || len(se.Labels) != len(tc.labels) {
			t.Fatalf("foreign sentinel changed: %v %v", se.Spec.GetHosts(), se.Labels)
		}
	}
}

// With --probe curl,xds the backend observes with curl and predicts beside it; with one mode it
// predicts nothing besides its own oracle.
func TestProbeBothIsAPredictor(t *testing.T) {
	var _ backend.Predictor = (*Backend)(nil)
	for mode, want := range map[string]backend.Oracle{ProbeCurl: "", ProbeXDS: "", ProbeBoth: backend.OracleLiveControlPlane} {
		b := &Backend{o: Options{Probe: mode}}
		if got := b.PredictionOracle(); got != want {
			t.Errorf("--probe %s: prediction oracle %q, want %q", mode, got, want)
		}
		b.xds = &xdsMode{}
		if got := b.predictOnly(); got != (mode == ProbeXDS) {
			t.Errorf("--probe %s: predictOnly %v", mode, got)
		}
	}
	// Without the control-plane probe running, a prediction is an error naming why, never an outcome.
	b := &Backend{o: Options{Probe: ProbeBoth}}
	if _, err := b.Predict(context.Background(), catalog.Workload{Name: "sleep", Namespace: "a"}, nil); err == nil || !strings.Contains(err.Error(), "control-plane probe is not running") {
		t.Errorf("Predict without the probe: %v", err)
	}
	if _, err := b.PredictedAccessLog(context.Background(), catalog.Workload{Name: "sleep", Namespace: "a"}, time.Time{}); err == nil {
		t.Error("PredictedAccessLog without the probe: no error")
	}
}
