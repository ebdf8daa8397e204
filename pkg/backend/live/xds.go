package live

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

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
	// gen is the sentinel generation last applied; every probe waits for it.
	gen int

	mu   sync.Mutex
	logs map[string][]timedEntry
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
	b.xds = &xdsMode{prober: p, stop: stop, logs: map[string][]timedEntry{}}
	b.AddCleanup("control-plane probe", func(ctx context.Context) error {
		p.Close()
		stop()
		s := xdsprobe.Sentinel(0, nil)
		_, err := b.deleteOwned(ctx, objRef{GVR: sentinelGVR, Kind: "ServiceEntry", Namespace: s.GetNamespace(), Name: s.GetName()})
		return err
	})
	fmt.Fprintf(b.o.Progress, "   control-plane probe: istiod xDS through %s\n", addr)
	return nil
}

// xdsConverge bumps the sentinel and waits until every virtual proxy has it: istiod handles config
// events in order, so then each has every change made before.
func (b *Backend) xdsConverge(ctx context.Context) error {
	x := b.xds
	x.gen++
	if _, err := b.createOwned(ctx, xdsprobe.Sentinel(x.gen, nil)); err != nil {
		return fmt.Errorf("sentinel: %w", err)
	}
	x.prober.Want(x.gen)
	return x.prober.Converge(ctx)
}

// xdsProbe predicts the request from the workload's pod.
func (b *Backend) xdsProbe(ctx context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	res, err := b.xds.prober.Probe(ctx, from.Namespace, from.Name, from.HasSidecar(), req)
	if err != nil {
		return outcome.Observed{}, fmt.Errorf("control-plane probe from %s: %w", from.Ref(), err)
	}
	now := time.Now()
	b.xds.mu.Lock()
	for ref, entries := range res.Logs {
		for _, e := range entries {
			b.xds.logs[ref] = append(b.xds.logs[ref], timedEntry{at: now, entry: e})
		}
	}
	b.xds.mu.Unlock()
	return res.Observed, nil
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
