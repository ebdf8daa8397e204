// Package envoymodel predicts what Envoy does with a request, given the xDS Istio generated for each
// proxy on the path. Istio's own pilot/pkg/simulation matches listeners, filter chains, routes and
// clusters; this package chains the hops as Envoy would (client sidecar -> egress gateway ->
// external host), evaluates the RBAC filters Istio generated, models Envoy's local responses
// (direct responses, no healthy upstream, RBAC denials, closed connections), and writes the access-log
// entry each proxy would write.
//
// The model is one; its xDS has two sources: Istio's control plane in process (the offline backend)
// and a live istiod (the control-plane probe). Anything it cannot decide it reports as out of model,
// naming the part of Envoy that would be needed.
package envoymodel

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/egressconf/egressconf/pkg/outcome"
)

// XDS is one proxy's configuration as Envoy receives it.
type XDS struct {
	Listeners []*listener.Listener
	Clusters  []*cluster.Cluster
	Routes    []*route.RouteConfiguration
}

// Proxy is one Envoy on the path.
type Proxy struct {
	// Ref names the workload whose proxy this is (name@namespace), for access logs.
	Ref string
	// Gateway is true for a gateway (no iptables capture: calls arrive on its listeners directly).
	Gateway bool
	// Identity is the proxy's SPIFFE identity, spiffe://cluster.local/ns/NS/sa/SA.
	Identity string
	// IP is the pod address.
	IP string
	// Labels are the pod's labels: security.istio.io/tlsMode=istio is what makes Istio mark its
	// endpoints for auto mTLS (the sidecar injection template sets it; the gateway chart does not).
	Labels map[string]string
	XDS    *XDS
}

// Request is what the application sends.
type Request struct {
	Method  string
	Scheme  string
	Host    string
	Port    int
	Path    string
	Headers http.Header
	Body    string
	// Namespace is the client pod's namespace: without a sidecar, its DNS search list decides
	// whether a short name (httpbin, httpbin.demo) is a mesh Service (MeshWorld).
	Namespace string
	// Authority replaces the Host header curl sends, once a proxy rewrote it (host_rewrite_literal).
	Authority string
}

// Response is what arrives back at the application, or a connection that ended without one.
type Response struct {
	// Status 0 means no HTTP response: see Reset.
	Status  int
	Headers http.Header
	Body    string
	// Proto is the HTTP version the client spoke end to end ("1.1" or "2"). An external host's
	// answer over TLS sets it from the host's ALPN (ServeExternal); Send fills it otherwise.
	Proto string
	// Delay is how long the external host waits before it answers (the stand-in's `delay`,
	// httpbin's /delay/N): computed, never waited. The model does not apply it to timeouts.
	Delay time.Duration
	// Reset means the connection was closed without a response.
	Reset bool
}

// ExternalRequest is a request that left the mesh for an external host.
type ExternalRequest struct {
	// Scheme is https when TLS reaches the external host (the client's own TLS passed through, or
	// TLS originated by a proxy), else http.
	Scheme string
	// Host is the Host header (HTTP) or SNI (passed-through TLS).
	Host   string
	SNI    string
	Port   int
	Method string
	Path   string
	Header http.Header
	Body   string
}

// World answers what lies outside the xDS: which proxy serves a gateway Service, and what an external
// host answers.
type World interface {
	// Gateway returns the gateway proxy behind a Service host and the target port for a Service
	// port, or ok=false when the host is not a gateway of the mesh.
	Gateway(host string, port int) (p *Proxy, targetPort int, ok bool, err error)
	// External answers a request to a host outside the mesh.
	External(req ExternalRequest) (Response, error)
}

// ExternalDelays is implemented by a World that knows how long an external host takes to answer a
// request (stand-in hosts that declare a delay): ok=false when it cannot know. A World without it
// is taken to answer at once, except httpbin's /delay/N (N seconds) and paths that stream, whose
// time is unknown; route timeouts are decided on that.
type ExternalDelays interface {
	ExternalDelay(req ExternalRequest) (d time.Duration, ok bool)
}

// Result is the prediction for one request.
type Result struct {
	Response Response
	// Logs are the access-log entries written, by proxy ref.
	Logs map[string][]outcome.LogEntry
	// Trace explains each hop, for diagnostics.
	Trace []string
}

func (r *Result) log(p *Proxy, e outcome.LogEntry) {
	if r.Logs == nil {
		r.Logs = map[string][]outcome.LogEntry{}
	}
	for _, f := range outcome.LogFields {
		if _, ok := e[f]; !ok {
			e[f] = "-"
		}
	}
	r.Logs[p.Ref] = append(r.Logs[p.Ref], e)
}

func (r *Result) tracef(format string, args ...any) {
	r.Trace = append(r.Trace, fmt.Sprintf(format, args...))
}

// OutOfModel reports a request whose outcome depends on Envoy behaviour this model does not cover.
func OutOfModel(format string, args ...any) error {
	return &outcome.OutOfModelError{Need: fmt.Sprintf(format, args...)}
}

// Send predicts the outcome of req sent by an application whose sidecar is client (nil: the
// application has no sidecar and talks to the network directly).
func Send(client *Proxy, req Request, world World) (*Result, error) {
	res := &Result{}
	if req.Headers == nil {
		req.Headers = http.Header{}
	}
	proto := "1.1"
	if req.Scheme == "https" {
		// curl offers h2 by ALPN; TLS that ends at the external host negotiates it there.
		proto = "2"
	}
	if client == nil {
		h := &hop{world: world, res: res}
		d, inMesh, err := h.resolveService(req)
		if err != nil {
			return nil, err
		}
		if inMesh {
			res.tracef("no sidecar: request goes to the pod of %s directly", d.Ref)
			resp, err := h.directToWorkload(d, req)
			if err != nil {
				return nil, err
			}
			resp.Proto = proto
			res.Response = resp
			return res, nil
		}
		res.tracef("no sidecar: request goes to %s directly", req.Host)
		resp, err := h.external(externalFromApp(req))
		if err != nil {
			return nil, err
		}
		if resp.Proto == "" {
			resp.Proto = proto
		}
		res.Response = resp
		return res, nil
	}
	h := &hop{world: world, res: res}
	var resp Response
	var err error
	if req.Scheme == "http" {
		resp, err = h.sidecarHTTP(client, req)
		resp.Proto = "1.1"
	} else {
		resp, err = h.sidecarTLS(client, req)
		// The application's TLS ends at the external host (no proxy of the model terminates it):
		// the host's ALPN decides the version when it said.
		if !resp.Reset && resp.Proto == "" {
			resp.Proto = proto
		}
	}
	if err != nil {
		return nil, err
	}
	res.Response = resp
	return res, nil
}

func externalFromApp(req Request) ExternalRequest {
	e := ExternalRequest{Scheme: req.Scheme, Host: req.Host, Port: req.Port, Method: req.Method, Path: req.Path, Header: req.Headers, Body: req.Body}
	if req.Scheme == "https" {
		e.SNI = req.Host
	}
	return e
}

// hostHeader is the Host header curl sends for the request.
func hostHeader(req Request) string {
	if req.Authority != "" {
		return req.Authority
	}
	if (req.Scheme == "http" && req.Port == 80) || (req.Scheme == "https" && req.Port == 443) {
		return req.Host
	}
	return req.Host + ":" + strconv.Itoa(req.Port)
}

var errRecovered = errors.New("simulation failed")
