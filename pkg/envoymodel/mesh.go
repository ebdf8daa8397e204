package envoymodel

import (
	"net/http"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"istio.io/istio/pilot/pkg/simulation"
)

// MeshWorld is a World that also knows the mesh's own workloads behind Kubernetes Services (the
// fixtures the scenario deployed): a request to one of them goes to that pod's sidecar, inbound,
// and then to its application. A World without it leaves every request to a cluster-local
// Service host out of model.
type MeshWorld interface {
	World
	// Service returns the workload behind a Service host (name.ns.svc.cluster.local) and Service
	// port, or ok=false when the host is no Service of a known workload (a known host without
	// that port is an error: the model does not say what a closed port does).
	Service(host string, port int) (d Destination, ok bool, err error)
	// App is the application of the workload whose proxy has ref, listening on port, or nil
	// when the model does not know what it answers.
	App(ref string, port int) http.Handler
}

// Destination is the pod a Service request reaches.
type Destination struct {
	// Ref names the workload (name@namespace).
	Ref string
	// Proxy is the pod's sidecar, nil when it has none.
	Proxy *Proxy
	// TargetPort is the pod port the Service port maps to.
	TargetPort int
}

// clusterLocal reports whether host is a Kubernetes Service name of the cluster's domain.
func clusterLocal(host string) bool { return strings.HasSuffix(host, ".svc.cluster.local") }

// meshDestination finds the workload a cluster of p sends to: the Service the cluster is named
// after (outbound|port||name.ns.svc.cluster.local), or one a DNS cluster's endpoint names (a
// ServiceEntry whose endpoint address is a Service host). ok=false: not a mesh workload.
func (h *hop) meshDestination(c *cluster.Cluster, host string, port int) (Destination, bool, error) {
	mw, known := h.world.(MeshWorld)
	targets := []struct {
		host string
		port int
	}{{host, port}}
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, ep := range le.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa != nil && clusterLocal(sa.GetAddress()) {
				targets = append(targets, struct {
					host string
					port int
				}{sa.GetAddress(), int(sa.GetPortValue())})
			}
		}
	}
	for _, t := range targets {
		if !clusterLocal(t.host) {
			continue
		}
		if !known {
			return Destination{}, false, OutOfModel("a request to the mesh Service %s: this world knows no workload behind it", t.host)
		}
		d, ok, err := mw.Service(t.host, t.port)
		if err != nil || ok {
			return d, ok, err
		}
		return Destination{}, false, OutOfModel("a request to %s:%d: no workload of the scenario serves that Service port", t.host, t.port)
	}
	return Destination{}, false, nil
}

// toWorkload sends an HTTP request from proxy p through cluster c to a mesh workload: into the
// workload's sidecar (inbound: its RBAC, its route to the application), or to the application
// directly when it has no sidecar.
func (h *hop) toWorkload(p *Proxy, c *cluster.Cluster, d Destination, req Request) (Response, string, string, error) {
	up, err := clusterTLS(c, d.Proxy != nil)
	if err != nil {
		return Response{}, "", "", err
	}
	if d.Proxy == nil {
		if up.mtls || up.simple {
			return Response{}, "", "", OutOfModel("TLS from %s to %s, which has no sidecar", p.Ref, d.Ref)
		}
		resp, err := h.serveApp(d.Ref, d.TargetPort, req)
		return resp, "-", "via_upstream", err
	}
	if up.simple {
		return Response{}, "", "", OutOfModel("TLS origination from %s to the mesh workload %s", p.Ref, d.Ref)
	}
	call := simulation.Call{Address: d.Proxy.IP, Port: d.TargetPort, Protocol: simulation.HTTP, HostHeader: hostHeader(req),
		Path: req.Path, CallMode: simulation.CallModeInbound, TLS: simulation.Plaintext}
	down := downstream{}
	if up.mtls {
		call.TLS, down.principal, down.tls = simulation.MTLS, p.Identity, true
	}
	resp, err := h.httpProxy(d.Proxy, call, req, down)
	if err != nil {
		return Response{}, "", "", err
	}
	if resp.Reset {
		return replyResetUpstrem, "UC", "upstream_reset_before_response_started{connection_termination}", nil
	}
	return resp, "-", "via_upstream", nil
}

// inboundApp delivers a request a sidecar routed to its inbound cluster (inbound|port||) to the
// pod's application.
func (h *hop) inboundApp(p *Proxy, name string, req Request) (Response, string, string, error) {
	parts := strings.Split(name, "|")
	port, err := strconv.Atoi(parts[1])
	if len(parts) != 4 || err != nil {
		return Response{}, "", "", OutOfModel("inbound cluster %q on %s", name, p.Ref)
	}
	resp, err := h.serveApp(p.Ref, port, req)
	return resp, "-", "via_upstream", err
}

// serveApp answers a request with the workload's application, as it receives it: plain HTTP,
// the Host header the client sent.
func (h *hop) serveApp(ref string, port int, req Request) (Response, error) {
	mw, ok := h.world.(MeshWorld)
	var app http.Handler
	if ok {
		app = mw.App(ref, port)
	}
	if app == nil {
		return Response{}, OutOfModel("what the application of %s answers on port %d", ref, port)
	}
	resp, err := ServeExternal(app, ExternalRequest{Scheme: "http", Host: hostHeader(req), Port: port, Method: req.Method, Path: req.Path, Header: req.Headers, Body: req.Body})
	h.res.tracef("application %s:%d %s %s -> %d (err=%v)", ref, port, req.Method, req.Path, resp.Status, err)
	return resp, err
}

// resolveService finds the mesh workload a client without a sidecar reaches: the request's host
// resolved as the pod's DNS would (the search list of its namespace, then the name as given), a
// Service of the cluster's domain. ok=false: the name is no Service the world knows.
func (h *hop) resolveService(req Request) (Destination, bool, error) {
	var names []string
	if req.Namespace != "" {
		for _, suffix := range []string{req.Namespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"} {
			names = append(names, req.Host+"."+suffix)
		}
	}
	names = append(names, req.Host)
	mw, known := h.world.(MeshWorld)
	for _, n := range names {
		if !clusterLocal(n) {
			continue
		}
		if _, _, isGW, _ := h.world.Gateway(n, req.Port); isGW {
			return Destination{}, false, OutOfModel("a request from a client without a sidecar to the gateway Service %s", n)
		}
		if !known {
			if n == req.Host {
				return Destination{}, false, OutOfModel("a request to the mesh Service %s: this world knows no workload behind it", n)
			}
			continue
		}
		d, ok, err := mw.Service(n, req.Port)
		if err != nil || ok {
			return d, ok, err
		}
	}
	return Destination{}, false, nil
}

// directToWorkload sends a request of a client without a sidecar to a mesh workload's pod: plain
// HTTP into its sidecar (inbound, no peer identity), or to its application.
func (h *hop) directToWorkload(d Destination, req Request) (Response, error) {
	if req.Scheme != "http" {
		return Response{}, OutOfModel("TLS from a client without a sidecar to the mesh workload %s", d.Ref)
	}
	if d.Proxy == nil {
		return h.serveApp(d.Ref, d.TargetPort, req)
	}
	call := simulation.Call{Address: d.Proxy.IP, Port: d.TargetPort, Protocol: simulation.HTTP, HostHeader: hostHeader(req),
		Path: req.Path, CallMode: simulation.CallModeInbound, TLS: simulation.Plaintext}
	return h.httpProxy(d.Proxy, call, req, downstream{})
}
