package live

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// Source ports the probes bind (curl --local-port), one per probe, so a proxy's entry of a request
// without headers (TLS, TCP) is tied to its probe by the client's address: the sidecar logs it as
// downstream_remote_address, and its upstream_local_address is the address the next proxy (the
// egress gateway) logs as its downstream_remote_address.
// A probe that follows redirects gets redirectPorts ports (curl binds one per hop, the first
// connection still open), the first of which its first connection binds.
const (
	firstProbePort = 20000
	probePorts     = 10000
	redirectPorts  = 8
)

// probeRecord is one curl probe of the run.
type probeRecord struct {
	marker string
	// pod is the probing pod (namespace/name) and client its IP:port.
	pod, client string
	// sidecar: the pod has a proxy whose log holds the request's first hop.
	sidecar bool
	at      time.Time
}

// probeMarks hands out markers and remembers the probes for access-log correlation.
type probeMarks struct {
	mu sync.Mutex
	n  int
	// port is the next source port to hand out, an offset from firstProbePort.
	port   int
	probes []probeRecord
}

// next records a probe from pod and returns its marker, its curl options and whether the request
// can carry the marker header (plain HTTP only: an HTTPS request's headers are inside its TLS).
func (m *probeMarks) next(pod *corev1.Pod, req *probe.Request, o probe.Options) (string, probe.Options) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	marker := "c" + strconv.Itoa(m.n)
	span := 1
	if req.FollowRedirects {
		span = redirectPorts
	}
	if m.port+span > probePorts {
		m.port = 0
	}
	o.LocalPort, o.LocalPorts = firstProbePort+m.port, span
	m.port += span
	if req.Scheme == "http" {
		o.Headers = append(o.Headers, outcome.ProbeHeader+": "+marker)
	}
	m.probes = append(m.probes, probeRecord{
		marker: marker, pod: pod.Namespace + "/" + pod.Name,
		client: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(o.LocalPort)), at: time.Now(),
		sidecar: hasContainer(pod, ProxyContainer),
	})
	return marker, o
}

// since returns the probes made at or after t.
func (m *probeMarks) since(t time.Time) []probeRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []probeRecord
	for _, p := range m.probes {
		if !p.at.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

// markEntries sets outcome.LogFieldProbe on each entry that belongs to one of the probes: by the
// logged marker header, or by the downstream address (the probe's client address for a sidecar's
// entry; for a gateway's, the upstream address of the sidecar entry of that probe, from upstream).
func markEntries(entries []outcome.LogEntry, upstream map[string]string) {
	for _, e := range entries {
		if v := e[outcome.LogFieldProbe]; v != "" && v != "-" {
			continue
		}
		delete(e, outcome.LogFieldProbe)
		if m, ok := upstream[e["downstream_remote_address"]]; ok {
			e[outcome.LogFieldProbe] = m
		}
	}
}

// clientAddresses maps each probe's client address to its marker.
func clientAddresses(probes []probeRecord) map[string]string {
	out := map[string]string{}
	for _, p := range probes {
		out[p.client] = p.marker
	}
	return out
}

// sidecarHops maps the upstream_local_address of each marked sidecar entry to its marker: where
// the next proxy's entries of the same request come from.
func sidecarHops(entries []outcome.LogEntry) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		m, a := e[outcome.LogFieldProbe], e["upstream_local_address"]
		if m != "" && a != "" && a != "-" {
			out[a] = m
		}
	}
	return out
}

// Intercepted implements runner.InterceptionChecker: every probe must have an entry in the access
// log of the probing workload's sidecar, proof that the request went through its Envoy (the
// sidecar captured it) rather than straight out of the pod.
func (b *Backend) Intercepted(ctx context.Context, from catalog.Workload, markers []string) (err error) {
	defer explain(&err)
	if b.predictOnly() || !from.HasSidecar() || len(markers) == 0 {
		return nil
	}
	var first time.Time
	want := map[string]bool{}
	for _, m := range markers {
		want[m] = true
	}
	for _, p := range b.marks.since(time.Time{}) {
		if want[p.marker] && (first.IsZero() || p.at.Before(first)) {
			first = p.at
		}
	}
	var missing map[string]bool
	err = b.poll(ctx, b.o.Timeouts.AccessLog, func(ctx context.Context) (bool, error) {
		entries, err := b.AccessLog(ctx, from, first)
		if err != nil {
			return false, err
		}
		missing = map[string]bool{}
		for m := range want {
			missing[m] = true
		}
		for _, e := range entries {
			delete(missing, e[outcome.LogFieldProbe])
		}
		return len(missing) == 0, nil
	})
	if err != nil && len(missing) > 0 {
		return fmt.Errorf("the sidecar of %s logged no entry for %d of %d requests (e.g. %s) within %s: the request may not have gone through its Envoy (%v)",
			from.Ref(), len(missing), len(want), anyKey(missing), b.o.Timeouts.AccessLog, err)
	}
	return err
}

func anyKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}
