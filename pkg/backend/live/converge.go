package live

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressconf/egressconf/pkg/backend/live/envoyadmin"
	"github.com/egressconf/egressconf/pkg/xdsprobe"
)

// istiodPods lists istiod's running pods.
func (b *Backend) istiodPods(ctx context.Context) ([]corev1.Pod, error) {
	pods, err := b.cs.CoreV1().Pods(IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return nil, fmt.Errorf("istiod pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ready istiod pod in %s (label app=istiod)", IstioNamespace)
	}
	return out, nil
}

// istiodDebug runs `pilot-discovery request GET path` in an istiod pod: its debug endpoints on
// localhost:15014, without a port-forward or a token.
func (b *Backend) istiodDebug(ctx context.Context, pod *corev1.Pod, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := b.exec(ctx, pod.Namespace, pod.Name, "discovery", []string{"pilot-discovery", "request", "GET", path})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("istiod %s %s: exit %d: %s", pod.Name, path, res.ExitCode, clip(strings.TrimSpace(res.Stderr+res.Stdout), 300))
	}
	return []byte(res.Stdout), nil
}

// configzEntry is one config istiod's /debug/configz lists.
type configzEntry struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

// syncStatus is one proxy of istiod's /debug/syncz.
type syncStatus struct {
	ProxyID   string `json:"proxy"`
	Resources map[string]struct {
		Sent      string `json:"sent"`
		Acked     string `json:"acked"`
		LastError string `json:"lastError"`
	} `json:"resources"`
}

// Converge implements backend.Backend. It returns once
//  1. every istiod pod has the step's changes: each Istio object applied is in its config store
//     (/debug/configz) at the resource version written, each deleted one is gone, and its
//     mesh config (/debug/mesh) shows the outbound traffic policy set;
//  2. every proxy involved holds them, read from the proxy itself. The run bumps a sentinel
//     ServiceEntry after the change; istiod handles config events in order and sends a push's
//     types in order (CDS, EDS, LDS, RDS), so a proxy that holds the sentinel holds every change
//     made before it. A sidecar must hold the sentinel's virtual host in its route configuration
//     (RDS, the last type of the push); a gateway, which has no route for it, the sentinel's
//     cluster, with nothing warming and everything istiod sent it ACKed (/debug/syncz). With the
//     control-plane probe the virtual proxies wait for the sentinel the same way.
//
// The runner bounds it with Timeouts.Converge. Proxies without Envoy are not waited for: their
// checks are skipped.
func (b *Backend) Converge(ctx context.Context) (err error) {
	defer explain(&err)
	sc := b.sc
	if sc == nil || sc.skip != "" || (sc.pending.empty() && b.xds == nil) {
		return nil
	}
	pods, err := b.istiodPods(ctx)
	if err != nil {
		return err
	}
	var why string
	err = b.poll(ctx, 0, func(ctx context.Context) (bool, error) {
		for i := range pods {
			ok, w, err := b.istiodHas(ctx, &pods[i], sc.pending)
			if err != nil {
				return false, err
			}
			if !ok {
				why = w
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("istiod does not have the change (%s): %w", why, err)
	}
	if b.predictOnly() {
		sc.pending = pending{}
		return b.xdsConverge(ctx)
	}
	proxies := b.envoyProxies(ctx, sc)
	if len(proxies) == 0 && b.xds == nil {
		sc.pending = pending{}
		return nil
	}
	// One sentinel generation for the real proxies and, with --probe curl,xds, the virtual ones:
	// the prediction is made on the state the observation was made on.
	gen, err := b.bumpSentinel(ctx)
	if err != nil {
		return err
	}
	waiting := map[proxyRef]bool{}
	for _, p := range proxies {
		waiting[p] = true
	}
	err = b.poll(ctx, 0, func(ctx context.Context) (bool, error) {
		// The proxies are read at the same time: each read is a few execs through the API server,
		// and one after another they made most of a step's convergence time.
		var todo []proxyRef
		for _, p := range proxies {
			if waiting[p] {
				todo = append(todo, p)
			}
		}
		type answer struct {
			ok  bool
			why string
			err error
		}
		answers := make([]answer, len(todo))
		var wg sync.WaitGroup
		for i, p := range todo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, w, err := b.proxyHolds(ctx, pods, p, gen)
				answers[i] = answer{ok, w, err}
			}()
		}
		wg.Wait()
		why = ""
		for i, a := range answers {
			if a.err != nil {
				return false, a.err
			}
			if a.ok {
				delete(waiting, todo[i])
			} else if why == "" {
				why = a.why
			}
		}
		return len(waiting) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("proxies do not hold the change (%s): %w", why, err)
	}
	if b.xds != nil {
		b.xds.prober.Want(gen)
		if err := b.xds.prober.Converge(ctx); err != nil {
			return fmt.Errorf("control-plane probe: %w", err)
		}
	}
	sc.pending = pending{}
	return nil
}

// proxyHolds reads from the proxy whether it holds sentinel generation gen (step 2 of Converge).
func (b *Backend) proxyHolds(ctx context.Context, istiod []corev1.Pod, p proxyRef, gen int) (bool, string, error) {
	cfg, err := envoyadmin.ReadConfig(ctx, b.adminGet(p.namespace, p.pod))
	if err != nil {
		return false, "", fmt.Errorf("proxy %s/%s: %w", p.namespace, p.pod, err)
	}
	name := p.namespace + "/" + p.pod
	if !cfg.Clusters[xdsprobe.SentinelCluster(gen)] {
		return false, fmt.Sprintf("proxy %s does not hold cluster %s yet", name, xdsprobe.SentinelCluster(gen)), nil
	}
	if len(cfg.Warming) > 0 {
		return false, fmt.Sprintf("proxy %s is warming %s", name, strings.Join(cfg.Warming, ", ")), nil
	}
	// Connections opened before a listener change keep its old configuration until drained.
	dl, dfc, err := envoyadmin.Draining(ctx, b.adminGet(p.namespace, p.pod))
	if err != nil {
		return false, "", fmt.Errorf("proxy %s: %w", name, err)
	}
	if dl > 0 || dfc > 0 {
		return false, fmt.Sprintf("proxy %s is draining %d listeners and %d filter chains (connections opened before the change still use the old configuration)", name, dl, dfc), nil
	}
	if !p.gateway {
		route := strconv.Itoa(xdsprobe.SentinelHTTPPort)
		if !cfg.HasVirtualHost(route, xdsprobe.SentinelVirtualHost(gen)) {
			return false, fmt.Sprintf("proxy %s does not hold virtual host %s in route %s yet", name, xdsprobe.SentinelVirtualHost(gen), route), nil
		}
		return true, "", nil
	}
	return b.proxiesInSync(ctx, istiod, []proxyRef{p})
}

// adminGet reaches the Envoy admin API of a pod's proxy through pilot-agent.
func (b *Backend) adminGet(ns, pod string) envoyadmin.Get {
	return func(ctx context.Context, path string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := b.exec(ctx, ns, pod, ProxyContainer, []string{"pilot-agent", "request", "GET", path})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("`pilot-agent request GET %s` in %s/%s: exit %d: %s", path, ns, pod, res.ExitCode, clip(strings.TrimSpace(res.Stderr+res.Stdout), 300))
		}
		return []byte(res.Stdout), nil
	}
}

// istiodHas checks step 1 of Converge against one istiod pod.
func (b *Backend) istiodHas(ctx context.Context, pod *corev1.Pod, p pending) (bool, string, error) {
	if len(p.istio) > 0 || p.translated != nil {
		out, err := b.istiodDebug(ctx, pod, "/debug/configz")
		if err != nil {
			return false, "", err
		}
		have, err := parseConfigz(out)
		if err != nil {
			return false, "", err
		}
		if p.translated != nil {
			if ok, why := p.translated.arrived(pod.Name, have, p.istio); !ok {
				return false, why, nil
			}
		}
		for _, c := range p.istio {
			rv, ok := have[configzKey(c.ref.Kind, c.ref.Namespace, c.ref.Name)]
			switch {
			case c.deleted && ok:
				return false, fmt.Sprintf("istiod %s still has deleted %s", pod.Name, c.ref), nil
			case !c.deleted && !ok:
				return false, fmt.Sprintf("istiod %s does not have %s yet", pod.Name, c.ref), nil
			case !c.deleted && !rvAtLeast(rv, c.resourceVersion):
				return false, fmt.Sprintf("istiod %s has %s at resourceVersion %s, want %s", pod.Name, c.ref, rv, c.resourceVersion), nil
			}
		}
	}
	if p.mesh != "" {
		out, err := b.istiodDebug(ctx, pod, "/debug/mesh")
		if err != nil {
			return false, "", err
		}
		got, err := meshDebugMode(out)
		if err != nil {
			return false, "", err
		}
		if got != p.mesh {
			return false, fmt.Sprintf("istiod %s mesh outboundTrafficPolicy is %s, want %s", pod.Name, got, p.mesh), nil
		}
	}
	return true, "", nil
}

// meshDebugMode reads the outbound traffic policy from istiod's /debug/mesh JSON, where
// REGISTRY_ONLY (the enum's zero value) prints as an empty object.
func meshDebugMode(out []byte) (string, error) {
	var m struct {
		OutboundTrafficPolicy *struct {
			Mode string `json:"mode"`
		} `json:"outboundTrafficPolicy"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("istiod /debug/mesh: %w", err)
	}
	if m.OutboundTrafficPolicy == nil || m.OutboundTrafficPolicy.Mode == "" {
		return RegistryOnly, nil
	}
	return m.OutboundTrafficPolicy.Mode, nil
}

// proxyRef is a proxy Converge waits for.
type proxyRef struct {
	pod, namespace string
	gateway        bool
}

// envoyProxies are the proxies of the scenario that run Envoy: workload sidecars and gateway pods.
func (b *Backend) envoyProxies(ctx context.Context, sc *scenarioState) []proxyRef {
	var out []proxyRef
	for _, st := range sc.workloads {
		if st.w.HasSidecar() && st.noEnvoy == "" {
			if p, err := b.workloadPod(ctx, st.w); err == nil {
				out = append(out, proxyRef{pod: p.Name, namespace: p.Namespace})
			}
		}
	}
	for _, name := range sc.s.Spec.Gateways {
		g := b.gateways[name]
		if g == nil || g.noEnvoy != "" {
			continue
		}
		for _, p := range g.pods {
			out = append(out, proxyRef{pod: p, namespace: g.gw.Namespace, gateway: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].namespace+out[i].pod < out[j].namespace+out[j].pod })
	return out
}

// proxiesInSync checks with the /debug/syncz of every istiod pod (each proxy is connected to one
// of them) that each proxy has ACKed everything istiod sent it and rejected nothing.
func (b *Backend) proxiesInSync(ctx context.Context, pods []corev1.Pod, proxies []proxyRef) (bool, string, error) {
	var statuses []syncStatus
	for i := range pods {
		out, err := b.istiodDebug(ctx, &pods[i], "/debug/syncz")
		if err != nil {
			return false, "", err
		}
		var st []syncStatus
		if err := json.Unmarshal(out, &st); err != nil {
			return false, "", fmt.Errorf("istiod /debug/syncz: %w", err)
		}
		statuses = append(statuses, st...)
	}
	for _, p := range proxies {
		var st *syncStatus
		for i := range statuses {
			if syncIDIs(statuses[i].ProxyID, p) {
				st = &statuses[i]
				break
			}
		}
		if st == nil {
			return false, fmt.Sprintf("proxy %s/%s is not connected to istiod", p.namespace, p.pod), nil
		}
		for typ, r := range st.Resources {
			if r.LastError != "" {
				return false, fmt.Sprintf("proxy %s/%s rejected %s: %s", p.namespace, p.pod, shortType(typ), r.LastError), nil
			}
			if r.Sent != r.Acked {
				return false, fmt.Sprintf("proxy %s/%s has not ACKed %s", p.namespace, p.pod, shortType(typ)), nil
			}
		}
	}
	return true, "", nil
}

// syncIDIs reports whether a /debug/syncz proxy ID names the pod: "pod.namespace" (Istio 1.2x and
// later), or a node ID "type~ip~pod.namespace~namespace.svc.cluster.local".
func syncIDIs(id string, p proxyRef) bool {
	name := p.pod + "." + p.namespace
	return id == name || strings.Contains(id, "~"+name+"~")
}

func shortType(typeURL string) string {
	if i := strings.LastIndex(typeURL, "."); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}
