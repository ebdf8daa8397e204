package live

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/egressconf/egressconf/fixtures"
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
)

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
	addr, stop, err := xdsprobe.ForwardIstiod(ctx, b.cfg, b.cs, IstioNamespace)
	if err != nil {
		return err
	}
	p := xdsprobe.New(b.cs, addr, standin.NewHandler(standin.DefaultHosts()))
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
			s := xdsprobe.Sentinel(0, nil)
			_, err := b.deleteOwned(ctx, objRef{GVR: sentinelGVR, Kind: "ServiceEntry", Namespace: s.GetNamespace(), Name: s.GetName()})
			return err
		})
	}
	b.sentinelGen++
	if _, err := b.createOwned(ctx, xdsprobe.Sentinel(b.sentinelGen, nil)); err != nil {
		return 0, fmt.Errorf("sentinel: %w", err)
	}
	return b.sentinelGen, nil
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
