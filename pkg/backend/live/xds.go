package live

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/pkg/xdsprobe"
)

// Probe modes.
const (
	// ProbeCurl runs curl in the workload's pod: an observation through the live data plane.
	ProbeCurl = "curl"
	// ProbeXDS predicts each request from the xDS the live istiod sends the pods' proxies
	// (pkg/xdsprobe), with the same Envoy model as the offline backend.
	ProbeXDS = "xds"
	// ProbeBoth observes each request with curl and predicts it from the live istiod's xDS on the
	// same converged state: the observation decides, the prediction is recorded beside it.
	ProbeBoth = "curl,xds"
)

// NormalizeProbe returns the probe mode of a --probe value (curl, xds, curl,xds or xds,curl),
// or an error naming the value.
func NormalizeProbe(v string) (string, error) {
	switch strings.ReplaceAll(v, " ", "") {
	case "", ProbeCurl:
		return ProbeCurl, nil
	case ProbeXDS:
		return ProbeXDS, nil
	case ProbeBoth, "xds,curl":
		return ProbeBoth, nil
	}
	return "", fmt.Errorf("--probe %q: want %s, %s or %s", v, ProbeCurl, ProbeXDS, ProbeBoth)
}

// predictOnly is --probe xds: the control-plane probe answers every probe and access-log read.
func (b *Backend) predictOnly() bool { return b.xds != nil && b.o.Probe == ProbeXDS }

// PredictionOracle implements backend.Predictor: the live istiod's xDS with --probe curl,xds,
// else nothing.
func (b *Backend) PredictionOracle() backend.Oracle {
	if b.o.Probe == ProbeBoth {
		return backend.OracleLiveControlPlane
	}
	return ""
}

// PredictionCapabilities implements backend.Predictor: the xDS holds no NetworkPolicy (the
// model evaluates none); an ASMEgressTrafficPolicy reaches the xDS as the cluster serves it.
func (b *Backend) PredictionCapabilities() map[string]bool {
	info := b.Info()
	return map[string]bool{backend.CapASMEgressTrafficPolicy: info.Capabilities[backend.CapASMEgressTrafficPolicy]}
}

// Predict implements backend.Predictor: the request from the workload's pod, evaluated on the
// xDS istiod sent it (and the egress gateway), converged with the curl probe's proxies.
func (b *Backend) Predict(ctx context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	if b.xds == nil {
		return outcome.Observed{}, fmt.Errorf("the control-plane probe is not running (--probe %s)", b.o.Probe)
	}
	if from.Gateway {
		return outcome.Observed{}, fmt.Errorf("%s is a gateway: probes run from workloads", from.Ref())
	}
	if sc := b.sc; sc == nil || sc.workloads[from.Ref()] == nil {
		return outcome.Observed{}, fmt.Errorf("workload %s is not deployed", from.Ref())
	}
	return b.xdsProbe(ctx, from, req)
}

// PredictedAccessLog implements backend.Predictor.
func (b *Backend) PredictedAccessLog(_ context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error) {
	if b.xds == nil {
		return nil, fmt.Errorf("the control-plane probe is not running (--probe %s)", b.o.Probe)
	}
	return b.xdsAccessLog(w, since), nil
}

// sentinelGVR is the sentinel's resource (a ServiceEntry).
var sentinelGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

// xdsMode is the control-plane probe's state for a run.
type xdsMode struct {
	prober *xdsprobe.Prober
	stop   func()
	mu     sync.Mutex
	logs   map[string][]timedEntry
	probes int
}

type timedEntry struct {
	at    time.Time
	entry outcome.LogEntry
}

// startXDS port-forwards to istiod's xDS port and opens the prober. Its cleanup closes both and
// removes the sentinel.
func (b *Backend) startXDS(ctx context.Context) error {
	if len(b.o.Hosts) == 0 {
		return fmt.Errorf("control-plane probe: no external hosts were given (the catalog's hosts.yaml): it answers for them in process")
	}
	if err := standin.ValidateHosts(b.o.Hosts); err != nil {
		return fmt.Errorf("control-plane probe: the catalog's external hosts: %w", err)
	}
	addr, stop, err := xdsprobe.ForwardIstiod(ctx, b.cfg, b.cs, IstioNamespace)
	if err != nil {
		return err
	}
	p := xdsprobe.New(b.cs, addr, standin.NewHandler(b.o.Hosts))
	p.Settle = b.o.Timeouts.Converge
	p.WorkloadLabels = map[string]string{fixtures.LabelRun: b.o.RunID}
	b.xds = &xdsMode{prober: p, stop: stop, logs: map[string][]timedEntry{}}
	b.AddCleanup("control-plane probe", func(ctx context.Context) error {
		p.Close()
		stop()
		return nil
	})
	fmt.Fprintf(b.o.Progress, "   control-plane probe: istiod xDS through %s\n", addr)
	return nil
}

// xdsConverge bumps the sentinel and waits until every virtual proxy has it: istiod handles config
// events in order, so then each has every change made before.
func (b *Backend) xdsConverge(ctx context.Context) error {
	gen, err := b.bumpSentinel(ctx)
	if err != nil {
		return err
	}
	b.xds.prober.Want(gen)
	return b.xds.prober.Converge(ctx)
}

// bumpSentinel applies the sentinel's next generation and returns it. The first bump registers
// the sentinel's removal with the run's cleanups.
func (b *Backend) bumpSentinel(ctx context.Context) (int, error) {
	if b.sentinelGen == 0 {
		b.AddCleanup("sentinel", func(ctx context.Context) error {
			_, err := b.deleteSentinel(ctx)
			return err
		})
	}
	b.sentinelGen++
	if err := b.applySentinel(ctx, xdsprobe.Sentinel(b.sentinelGen, b.labels())); err != nil {
		return 0, fmt.Errorf("sentinel: %w", err)
	}
	return b.sentinelGen, nil
}

// sentinelRef names the sentinel in messages and ownership errors.
var sentinelRef = objRef{GVR: sentinelGVR, Kind: "ServiceEntry", Namespace: xdsprobe.SentinelNamespace, Name: xdsprobe.SentinelName}

// applySentinel creates the sentinel, or updates it when it exists and is this run's, through
// Istio's typed clientset; an existing sentinel without this run's label is an *OwnershipError,
// never overwritten (as createOwned does for the catalog's objects).
func (b *Backend) applySentinel(ctx context.Context, want *networkingv1.ServiceEntry) error {
	c := b.istio.NetworkingV1().ServiceEntries(want.Namespace)
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err := c.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("create %s: %w", sentinelRef, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", sentinelRef, err)
		}
		if err := b.foreign(sentinelRef, cur); err != nil {
			return err
		}
		next := want.DeepCopy()
		next.ResourceVersion = cur.ResourceVersion
		_, err = c.Update(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", sentinelRef, err)
		}
		return nil
	}
}

// deleteSentinel deletes the sentinel if it is this run's; missing is fine; another owner's is
// refused. It returns whether something was deleted.
func (b *Backend) deleteSentinel(ctx context.Context) (bool, error) {
	c := b.istio.NetworkingV1().ServiceEntries(sentinelRef.Namespace)
	cur, err := c.Get(ctx, sentinelRef.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", sentinelRef, err)
	}
	if err := b.foreign(sentinelRef, cur); err != nil {
		return false, err
	}
	if cur.DeletionTimestamp != nil {
		return true, nil
	}
	bg := metav1.DeletePropagationBackground
	err = c.Delete(ctx, sentinelRef.Name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: ptr(cur.UID)}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("delete %s: %w", sentinelRef, err)
	}
	return true, nil
}

// xdsProbe predicts the request from the workload's pod.
func (b *Backend) xdsProbe(ctx context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	res, err := b.xds.prober.Probe(ctx, from.Namespace, from.Name, from.HasSidecar(), req)
	if err != nil {
		return outcome.Observed{}, fmt.Errorf("control-plane probe from %s: %w", from.Ref(), err)
	}
	now := time.Now()
	b.xds.mu.Lock()
	b.xds.probes++
	marker := fmt.Sprintf("xds-%d", b.xds.probes)
	for ref, entries := range res.Logs {
		for _, e := range entries {
			b.xds.logs[ref] = append(b.xds.logs[ref], timedEntry{at: now, entry: outcome.WithProbe(e, marker)})
		}
	}
	b.xds.mu.Unlock()
	obs := res.Observed
	obs.Probe = marker
	return obs, nil
}

// xdsAccessLog returns the entries the predictions wrote for the workload's proxy since a time.
func (b *Backend) xdsAccessLog(w catalog.Workload, since time.Time) []outcome.LogEntry {
	b.xds.mu.Lock()
	defer b.xds.mu.Unlock()
	var out []outcome.LogEntry
	for _, e := range b.xds.logs[w.Ref()] {
		if !e.at.Before(since) {
			out = append(out, e.entry)
		}
	}
	return out
}
