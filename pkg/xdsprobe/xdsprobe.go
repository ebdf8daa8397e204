// Package xdsprobe is the control-plane probe: for each request it reads, from a live istiod, the
// exact xDS of the calling pod's proxy and of the egress gateway pod (through virtual proxies that
// stay subscribed, pkg/xdsclient), and evaluates the request with pkg/envoymodel, the model the
// offline backend uses. The external host's answer comes from the stand-in's handler in process.
//
// Convergence is exact: after every change the backend bumps a sentinel ServiceEntry visible to every
// proxy; istiod handles config events in order, so a proxy whose clusters carry the sentinel of
// generation N has every change made before it. A probe evaluates only on such a configuration.
package xdsprobe

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingclient "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/egressconf/egressconf/pkg/envoymodel"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/xdsclient"
)

// Sentinel naming: ServiceEntry istio-system/egressconf-sentinel with host gN.sentinel.egressconf.invalid
// on port 1 (TCP) and port 2 (HTTP), exported to every namespace. It changes nothing on the
// scenarios' ports. Port 1 puts cluster outbound|1||gN... into every proxy's CDS; port 2 puts a
// virtual host gN...:2 into every sidecar's route configuration "2" (RDS, the last type istiod
// sends in a push), so a sidecar holding it holds everything istiod pushed before it.
const (
	SentinelName      = "egressconf-sentinel"
	SentinelNamespace = "istio-system"
	sentinelDomain    = ".sentinel.egressconf.invalid"
)

// SentinelHTTPPort is the sentinel's HTTP port: a sidecar's route configuration of that name
// carries the sentinel's virtual host.
const SentinelHTTPPort = 2

// SentinelHost is the sentinel's host in generation gen.
func SentinelHost(gen int) string { return "g" + strconv.Itoa(gen) + sentinelDomain }

// SentinelCluster is the cluster every proxy holds for the sentinel of generation gen.
func SentinelCluster(gen int) string { return "outbound|1||" + SentinelHost(gen) }

// SentinelVirtualHost is the virtual host a sidecar's route configuration "2" holds for the
// sentinel of generation gen.
func SentinelVirtualHost(gen int) string {
	return SentinelHost(gen) + ":" + strconv.Itoa(SentinelHTTPPort)
}

var sentinelCluster = regexp.MustCompile(`^outbound\|1\|\|g([0-9]+)\.sentinel\.egressconf\.invalid$`)

// Sentinel is the sentinel ServiceEntry of generation gen, with the given labels, as istio.io/client-go's
// typed object (the live backend writes it through Istio's typed clientset).
func Sentinel(gen int, objLabels map[string]string) *networkingclient.ServiceEntry {
	return &networkingclient.ServiceEntry{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "ServiceEntry"},
		ObjectMeta: metav1.ObjectMeta{Name: SentinelName, Namespace: SentinelNamespace, Labels: objLabels},
		Spec: networkingapi.ServiceEntry{
			Hosts:      []string{SentinelHost(gen)},
			ExportTo:   []string{"*"},
			Location:   networkingapi.ServiceEntry_MESH_EXTERNAL,
			Resolution: networkingapi.ServiceEntry_STATIC,
			Ports: []*networkingapi.ServicePort{
				{Number: 1, Name: "tcp-sentinel", Protocol: "TCP"},
				{Number: SentinelHTTPPort, Name: "http-sentinel", Protocol: "HTTP"},
			},
			Endpoints: []*networkingapi.WorkloadEntry{{Address: "192.0.2.1"}},
		},
	}
}

// sentinelGen reads the sentinel generation a proxy's configuration carries (-1: none).
func sentinelGen(x *envoymodel.XDS) int {
	gen := -1
	for _, c := range x.Clusters {
		if m := sentinelCluster.FindStringSubmatch(c.GetName()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > gen {
				gen = n
			}
		}
	}
	return gen
}

// Prober holds the virtual proxies of one run.
type Prober struct {
	cs       kubernetes.Interface
	addr     string
	external http.Handler
	// Settle bounds how long a probe waits for a proxy to reach the wanted sentinel.
	Settle time.Duration
	// WorkloadLabels are added to app=<name> when finding a workload's pod (the run's own label,
	// so a cluster's own `sleep` is never taken for the run's).
	WorkloadLabels map[string]string

	mu      sync.Mutex
	clients map[string]*xdsclient.Client
	want    int
}

// New returns a prober reading xDS from addr (istiod's plaintext xDS port, e.g. a port-forward to
// istiod:15010); cs finds pods and Services; external answers for hosts outside the mesh.
func New(cs kubernetes.Interface, addr string, external http.Handler) *Prober {
	return &Prober{cs: cs, addr: addr, external: external, Settle: 60 * time.Second, clients: map[string]*xdsclient.Client{}, want: -1}
}

// Want records that every probe from now on must see sentinel generation gen or later.
func (p *Prober) Want(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want = gen
}

// Converge waits until every virtual proxy subscribed so far carries the wanted sentinel.
func (p *Prober) Converge(ctx context.Context) error {
	p.mu.Lock()
	clients := make([]*xdsclient.Client, 0, len(p.clients))
	for _, c := range p.clients {
		clients = append(clients, c)
	}
	want := p.want
	p.mu.Unlock()
	for _, c := range clients {
		if _, err := p.await(ctx, c, want); err != nil {
			return err
		}
	}
	return nil
}

// await waits until c's configuration carries sentinel want or later, and returns it.
func (p *Prober) await(ctx context.Context, c *xdsclient.Client, want int) (*envoymodel.XDS, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Settle)
	defer cancel()
	if err := c.WaitSynced(ctx); err != nil {
		return nil, err
	}
	for {
		gen := c.Generation()
		x := c.Snapshot()
		if want < 0 || sentinelGen(x) >= want {
			return x, nil
		}
		if err := c.WaitPushAfter(ctx, gen, 0); err != nil {
			return nil, fmt.Errorf("waiting for sentinel g%d: %w", want, err)
		}
	}
}

// Close ends every subscription.
func (p *Prober) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		c.Close()
		delete(p.clients, k)
	}
}

// Result is a prediction with the access-log entries it implies, by workload ref (name@namespace).
type Result struct {
	Observed outcome.Observed
	Logs     map[string][]outcome.LogEntry
	Trace    []string
}

// Probe predicts req sent from the pod of workload app@ns (label app=<app>). A pod that cannot be
// found, or whose proxy's configuration cannot be read, is an error.
func (p *Prober) Probe(ctx context.Context, ns, app string, sidecar bool, req *probe.Request) (Result, error) {
	var client *envoymodel.Proxy
	if sidecar {
		sel := labels.Set{"app": app}
		for k, v := range p.WorkloadLabels {
			sel[k] = v
		}
		pod, err := p.podOf(ctx, ns, sel.AsSelector())
		if err != nil {
			return Result{}, err
		}
		if client, err = p.proxy(ctx, pod, app+"@"+ns, "sidecar"); err != nil {
			return Result{}, err
		}
	}
	header := http.Header{}
	for _, h := range req.Headers {
		k, v, _ := strings.Cut(h, ":")
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	start := time.Now()
	res, err := envoymodel.Send(client, envoymodel.Request{Method: req.Method, Scheme: req.Scheme, Host: req.Host, Port: req.Port,
		Path: req.Path, Headers: header, Body: req.Data, Namespace: ns}, &world{p: p, ctx: ctx})
	if err != nil {
		return Result{}, err
	}
	obs, err := envoymodel.Predict(req, res.Response, time.Since(start))
	if err != nil {
		return Result{}, err
	}
	return Result{Observed: obs, Logs: res.Logs, Trace: res.Trace}, nil
}

func (p *Prober) podOf(ctx context.Context, ns string, sel labels.Selector) (*corev1.Pod, error) {
	pods, err := p.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing pods %s in %s: %w", sel, ns, err)
	}
	var best *corev1.Pod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && podReady(pod) &&
			(best == nil || pod.CreationTimestamp.After(best.CreationTimestamp.Time)) {
			best = pod
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no running, ready pod %s in namespace %s (%d pods)", sel, ns, len(pods.Items))
	}
	return best, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// proxy returns the virtual proxy of a pod, subscribed once and kept, with a configuration that
// carries the wanted sentinel.
func (p *Prober) proxy(ctx context.Context, pod *corev1.Pod, ref, typ string) (*envoymodel.Proxy, error) {
	key := pod.Namespace + "/" + pod.Name
	p.mu.Lock()
	c, ok := p.clients[key]
	want := p.want
	p.mu.Unlock()
	if !ok {
		var err error
		c, err = xdsclient.Dial(ctx, p.addr, xdsclient.Node{Type: typ, IP: pod.Status.PodIP, Pod: pod.Name, Namespace: pod.Namespace,
			Labels: pod.Labels, ServiceAccount: pod.Spec.ServiceAccountName, IstioVersion: "1.31.0"})
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.clients[key] = c
		p.mu.Unlock()
	}
	x, err := p.await(ctx, c, want)
	if err != nil {
		return nil, fmt.Errorf("xDS of %s (%s): %w", ref, key, err)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return &envoymodel.Proxy{Ref: ref, Gateway: typ == "router", IP: pod.Status.PodIP, XDS: x, Labels: pod.Labels,
		Identity: fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", pod.Namespace, sa)}, nil
}

// world answers the model's questions from the cluster.
type world struct {
	p   *Prober
	ctx context.Context
}

// Gateway implements envoymodel.World: a Service whose pods run Istio's proxy as a router.
func (w *world) Gateway(host string, port int) (*envoymodel.Proxy, int, bool, error) {
	name, ns, ok := serviceOf(host)
	if !ok {
		return nil, 0, false, nil
	}
	svc, err := w.p.cs.CoreV1().Services(ns).Get(w.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("is %s a gateway? Service %s/%s: %w", host, ns, name, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, 0, false, nil
	}
	pod, err := w.p.podOf(w.ctx, ns, labels.Set(svc.Spec.Selector).AsSelector())
	if err != nil {
		return nil, 0, false, fmt.Errorf("is %s a gateway? %w", host, err)
	}
	if !isRouter(pod) {
		return nil, 0, false, nil
	}
	target := 0
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) == port {
			target = sp.TargetPort.IntValue()
			if target == 0 {
				target = int(sp.Port)
			}
		}
	}
	if target == 0 {
		return nil, 0, true, fmt.Errorf("gateway Service %s/%s has no port %d", ns, name, port)
	}
	px, err := w.p.proxy(w.ctx, pod, name+"@"+ns, "router")
	return px, target, true, err
}

// Service implements envoymodel.MeshWorld: a request to a Service of the cluster (other than a
// gateway's) reaches a mesh workload, which the control-plane probe does not model (what its
// application answers is not in any xDS): out of model. Any other host is not a mesh workload.
func (w *world) Service(host string, port int) (envoymodel.Destination, bool, error) {
	name, ns, ok := serviceOf(host)
	if !ok {
		return envoymodel.Destination{}, false, nil
	}
	_, err := w.p.cs.CoreV1().Services(ns).Get(w.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return envoymodel.Destination{}, false, nil
	}
	if err != nil {
		return envoymodel.Destination{}, false, fmt.Errorf("is %s a mesh Service? %w", host, err)
	}
	return envoymodel.Destination{}, true, envoymodel.OutOfModel("a request to the mesh Service %s:%d: the control-plane probe does not model the workloads behind it", host, port)
}

// App implements envoymodel.MeshWorld: no application is known (Service never returns one).
func (w *world) App(string, int) http.Handler { return nil }

// External implements envoymodel.World.
// ExternalDelay is how long the stand-in host takes to answer (envoymodel.ExternalDelays): its
// declared delay or httpbin's /delay/N, learned in process without waiting.
func (w *world) ExternalDelay(req envoymodel.ExternalRequest) (time.Duration, bool) {
	return envoymodel.ExternalDelayOf(w.p.external, req)
}

func (w *world) External(req envoymodel.ExternalRequest) (envoymodel.Response, error) {
	return envoymodel.ServeExternal(w.p.external, req)
}

// serviceOf splits NAME.NS.svc.cluster.local.
func serviceOf(host string) (name, ns string, ok bool) {
	parts := strings.Split(host, ".")
	if len(parts) < 4 || parts[2] != "svc" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// isRouter reports whether the pod runs Istio's proxy as a gateway (pilot-agent proxy router).
func isRouter(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == "istio-proxy" && slices.Contains(c.Args, "router") {
			return true
		}
	}
	return false
}
