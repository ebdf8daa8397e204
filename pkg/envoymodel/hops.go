package envoymodel

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"istio.io/istio/pilot/pkg/simulation"

	"github.com/egressconf/egressconf/pkg/envoymodel/rbac"
	"github.com/egressconf/egressconf/pkg/outcome"
)

// ExternalAddress is where external host names resolve in the model: one address outside every mesh
// Service (the hermetic stand-in is hidden from sidecars, see fixtures), so a call to it matches only
// what Istio generated for the host name itself.
const ExternalAddress = "203.0.113.10"

// Envoy's local replies, as Envoy writes them.
var (
	replyRBAC         = local(403, "RBAC: access denied")
	replyNoHealthy    = local(503, "no healthy upstream")
	replyNoRoute      = local(404, "")
	replyNoCluster    = local(503, "")
	replyTLSFailure   = local(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error")
	replyResetUpstrem = local(503, "upstream connect error or disconnect/reset before headers. reset reason: connection termination")
)

func local(status int, body string) Response {
	h := http.Header{}
	h.Set("content-length", strconv.Itoa(len(body)))
	if body != "" {
		h.Set("content-type", "text/plain")
	}
	return Response{Status: status, Headers: h, Body: body}
}

func (r Response) clone() Response {
	r.Headers = r.Headers.Clone()
	if r.Headers == nil {
		r.Headers = http.Header{}
	}
	return r
}

// upstreamTLS is what a cluster does with TLS toward its endpoints.
type upstreamTLS struct {
	// mtls: Istio mutual TLS (the workload certificate from SDS "default").
	mtls bool
	// simple: TLS originated with server verification only (DestinationRule SIMPLE).
	simple bool
	sni    string
}

// stream is what a TCP proxy carries: the application's TLS (passed through) or plain bytes.
type stream struct {
	tls bool
	sni string
	req Request
}

type hop struct {
	world World
	res   *Result
	// timeoutAbove: a proxy earlier on the path waits for this hop under a route timeout, so a
	// delay here could end the exchange there.
	timeoutAbove bool
}

// simulate runs Istio's simulation on one proxy, recovering from its test-only failure paths.
func (h *hop) simulate(p *Proxy, call simulation.Call) (r simulation.Result, l *listener.Listener, fc *listener.FilterChain, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("%w on %s for %+v: %v", errRecovered, p.Ref, call, rec)
		}
	}()
	sim := &simulation.Simulation{Listeners: p.XDS.Listeners, Clusters: p.XDS.Clusters, Routes: p.XDS.Routes}
	r = sim.Run(call)
	for _, x := range p.XDS.Listeners {
		if x.GetName() == r.ListenerMatched {
			l = x
		}
	}
	if l != nil && r.FilterChainMatched != "" {
		fc = rbac.FilterChainByName(l, r.FilterChainMatched)
	}
	if l != nil && fc == nil && r.FilterChainMatched == "" && r.Error == nil {
		// Unnamed chains (Istio's gateway chains): pick as Envoy would.
		if fc, err = matchChain(l, call.FillDefaults(), r); err != nil {
			return r, l, nil, err
		}
	}
	h.res.tracef("%s: %s %s:%d sni=%q tls=%s -> listener %q chain %q route %q/%q/%q cluster %q err=%v",
		p.Ref, call.Protocol, call.Address, call.Port, call.Sni, call.TLS, r.ListenerMatched, r.FilterChainMatched,
		r.RouteConfigMatched, r.VirtualHostMatched, r.RouteMatched, r.ClusterMatched, r.Error)
	return r, l, fc, nil
}

func extractHCM(fc *listener.FilterChain) (*hcmv3.HttpConnectionManager, error) {
	for _, f := range fc.GetFilters() {
		if f.GetName() == "envoy.filters.network.http_connection_manager" {
			h := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				return nil, err
			}
			return h, nil
		}
	}
	return nil, nil
}

func extractTCPProxy(fc *listener.FilterChain) (*tcpproxy.TcpProxy, error) {
	for _, f := range fc.GetFilters() {
		if f.GetName() == "envoy.filters.network.tcp_proxy" {
			t := &tcpproxy.TcpProxy{}
			if err := f.GetTypedConfig().UnmarshalTo(t); err != nil {
				return nil, err
			}
			return t, nil
		}
	}
	return nil, nil
}

// connectionErr maps simulation errors that mean "Envoy closed the connection".
func connectionErr(err error) bool {
	return errors.Is(err, simulation.ErrNoListener) || errors.Is(err, simulation.ErrNoFilterChain) ||
		errors.Is(err, simulation.ErrProtocolError) || errors.Is(err, simulation.ErrTLSError) ||
		errors.Is(err, simulation.ErrMTLSError) || errors.Is(err, simulation.ErrMultipleFilterChain)
}

// sidecarHTTP: the application sends plain HTTP; iptables captures it into the sidecar.
func (h *hop) sidecarHTTP(p *Proxy, req Request) (Response, error) {
	call := simulation.Call{Address: ExternalAddress, Port: req.Port, Protocol: simulation.HTTP, TLS: simulation.Plaintext,
		HostHeader: hostHeader(req), Path: req.Path, CallMode: simulation.CallModeOutbound}
	return h.httpProxy(p, call, req, downstream{})
}

// sidecarTLS: the application speaks TLS itself (https://); the sidecar sees only SNI.
func (h *hop) sidecarTLS(p *Proxy, req Request) (Response, error) {
	call := simulation.Call{Address: ExternalAddress, Port: req.Port, Protocol: simulation.HTTP2, TLS: simulation.TLS,
		Sni: req.Host, Alpn: "h2", HostHeader: req.Host, CallMode: simulation.CallModeOutbound}
	resp, _, err := h.tcpProxy(p, call, stream{tls: true, sni: req.Host, req: req}, downstream{})
	return resp, err
}

// downstream is who is calling a proxy: the peer identity (mTLS) and the connection's SNI.
type downstream struct {
	principal string
	sni       string
	tls       bool
}

// httpProxy runs an HTTP request through a proxy whose listener should hold an HTTP connection
// manager (a sidecar's outbound HTTP port, or a gateway's HTTP server).
func (h *hop) httpProxy(p *Proxy, call simulation.Call, req Request, down downstream) (Response, error) {
	entry := outcome.LogEntry{"method": req.Method, "path": req.Path, "protocol": "HTTP/1.1", "authority": hostHeader(req), "route_name": "-",
		"requested_server_name": orDash(down.sni)}
	if p.Gateway {
		entry["protocol"] = "HTTP/2"
	}
	r, l, fc, err := h.simulate(p, call)
	if err != nil {
		return Response{}, err
	}
	switch {
	case r.Error == nil:
	case connectionErr(r.Error):
		h.logConn(p, entry, "NR", "filter_chain_not_found")
		return Response{Reset: true}, nil
	case errors.Is(r.Error, simulation.ErrNoVirtualHost), errors.Is(r.Error, simulation.ErrNoRoute):
		return h.reply(p, nil, entry, replyNoRoute, "NR", "route_not_found", "-"), nil
	default:
		return Response{}, OutOfModel("Envoy behaviour after %v on %s", r.Error, p.Ref)
	}
	hcm, err := extractHCM(fc)
	if err != nil {
		return Response{}, err
	}
	if hcm == nil {
		// A TCP proxy carrying plain HTTP (e.g. the catch-all chain).
		resp, _, err := h.tcpChain(p, l, fc, r.ClusterMatched, stream{req: req}, down)
		return resp, err
	}
	if err := checkHTTPFilters(p.Ref, hcm); err != nil {
		return Response{}, err
	}
	filters, err := rbac.FiltersForChain(l, fc)
	if err != nil {
		return Response{}, OutOfModel("RBAC filters on %s: %v", p.Ref, err)
	}
	rc, err := h.findRoute(p, hcm, r, req)
	if err != nil {
		return Response{}, err
	}
	rt := rc.rt
	if rt != nil {
		// %ROUTE_NAME%: the route the connection manager chose, whatever answers afterwards
		// (Istio's block_all, a VirtualService route's name); "-" for an unnamed one.
		entry["route_name"] = orDash(rt.GetName())
	}
	routeCluster := "-"
	if rt != nil && rt.GetRoute() != nil {
		routeCluster = orDash(rt.GetRoute().GetCluster())
	}
	var beh *routeBehaviour
	if rt != nil {
		if beh, err = readRoute(p.Ref, rc); err != nil {
			return Response{}, err
		}
	}
	flags := "-"
	// The fault filter and the RBAC filters run in the order of the connection manager's filters.
	faultStep := func() (*Response, error) {
		if beh == nil || beh.fault == nil {
			return nil, nil
		}
		if filterIndex(hcm, faultFilter) < 0 {
			return nil, OutOfModel("fault configuration on a route of %s, whose connection manager has no fault filter", p.Ref)
		}
		if beh.fault.delay > 0 {
			if h.timeoutAbove {
				return nil, OutOfModel("a fault delay on %s under a route timeout of the proxy before it", p.Ref)
			}
			h.res.tracef("%s: fault delay %s", p.Ref, beh.fault.delay)
			flags = addFlag(flags, "DI")
		}
		if beh.fault.abortStatus == 0 {
			return nil, nil
		}
		if beh.mutatesResponse() {
			return nil, OutOfModel("response header mutation on a fault abort on %s", p.Ref)
		}
		resp := h.reply(p, hcm, entry, local(beh.fault.abortStatus, "fault filter abort"), addFlag(flags, "FI"), "fault_filter_abort", routeCluster)
		return &resp, nil
	}
	faultFirst := beh != nil && beh.fault != nil && filterIndex(hcm, faultFilter) < firstRBACIndex(hcm)
	if faultFirst {
		if resp, err := faultStep(); resp != nil || err != nil {
			return deref(resp), err
		}
	}
	// HTTP RBAC runs before the router.
	if len(filters) > 0 {
		d, err := rbac.Evaluate(filters, rbac.Request{
			Principal: down.principal, DownstreamTLS: down.tls, RequestedServerName: down.sni,
			DestinationIP: call.Address, DestinationPort: uint32(call.Port), SourceIP: "10.244.0.10",
			HTTP: true, Method: req.Method, Host: hostHeader(req), Path: req.Path,
			Headers: rbacHeaders(req.Headers), UnknownHeader: envoyAddedHeader,
		})
		if err != nil {
			return Response{}, OutOfModel("RBAC evaluation on %s: %v", p.Ref, err)
		}
		h.res.tracef("%s: RBAC %s", p.Ref, d)
		if !d.Allowed {
			if d.Layer == rbac.LayerNetwork {
				entry["connection_termination_details"] = d.ResponseCodeDetails()
				h.logConn(p, entry, "-", "-")
				return Response{Reset: true}, nil
			}
			if beh != nil && beh.mutatesResponse() {
				return Response{}, OutOfModel("response header mutation on an RBAC denial on %s", p.Ref)
			}
			return h.reply(p, hcm, entry, replyRBAC, flags, d.ResponseCodeDetails(), routeCluster), nil
		}
	}
	if rt == nil {
		return Response{}, OutOfModel("route %q matched on %s but not found in its route configuration", r.RouteMatched, p.Ref)
	}
	if !faultFirst {
		if resp, err := faultStep(); resp != nil || err != nil {
			return deref(resp), err
		}
	}
	switch a := rt.GetAction().(type) {
	case *route.Route_DirectResponse:
		resp := local(int(a.DirectResponse.GetStatus()), a.DirectResponse.GetBody().GetInlineString())
		if a.DirectResponse.GetBody() != nil && a.DirectResponse.GetBody().GetInlineString() == "" {
			return Response{}, OutOfModel("a direct response body that is not an inline string on %s", p.Ref)
		}
		applyHeaders(resp.Headers, beh.response)
		return h.reply(p, hcm, entry, resp, flags, "direct_response", "-"), nil
	case *route.Route_Redirect:
		scheme := "http"
		if p.Gateway || down.tls || req.Headers.Get("X-Forwarded-Proto") != "" {
			if a.Redirect.GetSchemeRedirect() == "" && !a.Redirect.GetHttpsRedirect() {
				return Response{}, OutOfModel("a redirect on %s that keeps the request's :scheme (the model knows it only for plain HTTP at a sidecar)", p.Ref)
			}
		}
		loc, status, err := redirectLocation(p.Ref, rt, req, scheme)
		if err != nil {
			return Response{}, err
		}
		resp := local(status, "")
		resp.Headers.Set("Location", loc)
		applyHeaders(resp.Headers, beh.response)
		h.res.tracef("%s: redirect %d to %s", p.Ref, status, loc)
		return h.reply(p, hcm, entry, resp, flags, "direct_response", "-"), nil
	case *route.Route_Route:
		name := a.Route.GetCluster()
		if name == "" {
			wc := a.Route.GetWeightedClusters().GetClusters()
			if len(wc) != 1 {
				return Response{}, OutOfModel("weighted routing over %d clusters on %s", len(wc), p.Ref)
			}
			name = wc[0].GetName()
		}
		up, err := rewrite(p.Ref, rt, req, !suppressEnvoyHeaders(hcm))
		if err != nil {
			return Response{}, err
		}
		// The router rewrites the downstream request's headers in place, so this proxy's access
		// log shows the new authority, and the new path when no x-envoy-original-path keeps the
		// old one (Istio's format: %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%).
		entry["authority"] = hostHeader(up)
		if up.Headers.Get("X-Envoy-Original-Path") == "" {
			entry["path"] = up.Path
		}
		if up.Path != req.Path {
			if gw, err := h.leadsToGateway(name); err != nil || gw {
				return Response{}, OutOfModel("a path rewrite on %s before a gateway: the path its access log shows depends on how it treats x-envoy-original-path", p.Ref)
			}
		}
		up.Headers = cloneHeader(up.Headers)
		decorate(l, hcm, rt, up.Headers)
		// The router sets the attempt count before the route's header mutations (and again on
		// each retry, in routeToCluster).
		if beh.attemptCountInRequest {
			up.Headers.Set("X-Envoy-Attempt-Count", "1")
		}
		applyHeaders(up.Headers, beh.request)
		resp, rflags, details, err := h.routeToCluster(p, name, up, beh, rt)
		if err != nil {
			return Response{}, err
		}
		if details != "via_upstream" && (beh.mutatesResponse() || beh.attemptCountInResponse) {
			return Response{}, OutOfModel("response header mutation on Envoy's own reply (%s) on %s", details, p.Ref)
		}
		if details == "via_upstream" {
			resp = resp.clone()
			applyHeaders(resp.Headers, beh.response)
		}
		for _, f := range strings.Split(rflags, ",") {
			if f != "-" {
				flags = addFlag(flags, f)
			}
		}
		return h.reply(p, hcm, entry, resp, flags, details, name), nil
	}
	return Response{}, OutOfModel("route action %T on %s", rt.GetAction(), p.Ref)
}

func deref(r *Response) Response {
	if r == nil {
		return Response{}
	}
	return *r
}

// routeToCluster forwards the request under the route's timeout and retry policy.
func (h *hop) routeToCluster(p *Proxy, name string, req Request, beh *routeBehaviour, rt *route.Route) (Response, string, string, error) {
	delay, known := upstreamDelay(req.Path)
	if dr, ok := h.world.(ExternalDelays); ok {
		delay, known = dr.ExternalDelay(ExternalRequest{Scheme: "http", Host: hostHeader(req), Port: req.Port, Method: req.Method, Path: req.Path, Header: req.Headers})
	}
	gw, err := h.leadsToGateway(name)
	if err != nil {
		return Response{}, "", "", err
	}
	if other := perTryOrIdleTimeout(rt, beh); other != "" && (delay > 0 || !known || gw) {
		return Response{}, "", "", OutOfModel("%s on %s with an upstream that may be slow", other, p.Ref)
	}
	saved := h.timeoutAbove
	defer func() { h.timeoutAbove = saved }()
	if beh.timeout > 0 {
		switch {
		case !known:
			return Response{}, "", "", OutOfModel("route timeout %s on %s and an upstream (%s) whose delay the model does not know", beh.timeout, p.Ref, req.Path)
		case delay >= beh.timeout && gw:
			// The gateway would see its downstream go away mid-request: its log is not modelled.
			return Response{}, "", "", OutOfModel("route timeout %s on %s before a gateway whose upstream answers after %s", beh.timeout, p.Ref, delay)
		case delay == beh.timeout:
			return Response{}, "", "", OutOfModel("route timeout %s on %s races an upstream that answers after %s", beh.timeout, p.Ref, delay)
		case delay > beh.timeout:
			h.res.tracef("%s: route timeout %s before the upstream answers (%s)", p.Ref, beh.timeout, delay)
			return local(504, "upstream request timeout"), "UT", "upstream_response_timeout", nil
		}
		h.timeoutAbove = true
	}
	retries := 0
	if beh.retry != nil {
		retries = 1
		if beh.retry.GetNumRetries() != nil {
			retries = int(beh.retry.GetNumRetries().GetValue())
		}
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 && beh.attemptCountInRequest {
			req.Headers = cloneHeader(req.Headers)
			req.Headers.Set("X-Envoy-Attempt-Count", strconv.Itoa(attempt))
		}
		resp, flags, details, err := h.clusterHTTP(p, name, req)
		if err != nil {
			return Response{}, "", "", err
		}
		if flags == "NC" {
			resp = local(beh.clusterNotFound, "")
		}
		again, err := retriable(p.Ref, beh.retry, resp, flags, details)
		if err != nil {
			return Response{}, "", "", err
		}
		if again && attempt <= retries {
			if beh.timeout > 0 && delay > 0 && delay*time.Duration(attempt+1) >= beh.timeout {
				return Response{}, "", "", OutOfModel("retries under route timeout %s on %s with an upstream that answers after %s", beh.timeout, p.Ref, delay)
			}
			h.res.tracef("%s: attempt %d retried under retry_on %q", p.Ref, attempt, beh.retry.GetRetryOn())
			continue
		}
		if again {
			flags = addFlag(flags, "URX")
		}
		if beh.attemptCountInResponse && details == "via_upstream" {
			resp = resp.clone()
			resp.Headers.Set("x-envoy-attempt-count", strconv.Itoa(attempt))
		}
		return resp, flags, details, nil
	}
}

// decorate sets or removes x-envoy-decorator-operation as the connection manager does before its
// filters run (ConnectionManagerImpl::ActiveStream::traceRequest): with tracing configured, a span
// is started even without a tracing provider (Envoy's NullTracer returns a NullSpan), and then an
// egress manager (an OUTBOUND listener: Istio's sidecar outbound and gateway listeners) sends the
// route decorator's operation upstream unless propagate is false, while an ingress manager removes
// the header it received.
func decorate(l *listener.Listener, hcm *hcmv3.HttpConnectionManager, rt *route.Route, h http.Header) {
	if hcm.GetTracing() == nil {
		return
	}
	if l.GetTrafficDirection() != corev3.TrafficDirection_OUTBOUND {
		h.Del("X-Envoy-Decorator-Operation")
		return
	}
	d := rt.GetDecorator()
	if d.GetOperation() != "" && (d.GetPropagate() == nil || d.GetPropagate().GetValue()) {
		h.Set("X-Envoy-Decorator-Operation", d.GetOperation())
	}
}

// leadsToGateway says whether a cluster's endpoints are a gateway of the mesh.
func (h *hop) leadsToGateway(name string) (bool, error) {
	port, _, host, ok := parseClusterName(name)
	if !ok {
		return false, nil
	}
	_, _, isGW, err := h.world.Gateway(host, port)
	return isGW, err
}

// modelledHTTPFilters are the HTTP filters whose effect on a request the model knows: Istio's
// telemetry and protocol filters change no outcome; CORS acts only with a policy (refused per
// route); fault and RBAC are modelled; the router is the route action.
var modelledHTTPFilters = map[string]bool{
	"istio.metadata_exchange": true, "istio.alpn": true, "istio.stats": true, "istio_authn": true,
	"envoy.filters.http.grpc_stats": true, "envoy.filters.http.cors": true, "envoy.filters.http.fault": true,
	"envoy.filters.http.rbac": true, "envoy.filters.http.router": true,
}

// checkHTTPFilters refuses connection managers with filters or local-reply rewriting the model
// does not apply (an EnvoyFilter's Lua or rate limit, ext_authz of a CUSTOM policy, JWT
// authentication, Wasm plugins, ...).
func checkHTTPFilters(where string, hcm *hcmv3.HttpConnectionManager) error {
	for _, f := range hcm.GetHttpFilters() {
		if !modelledHTTPFilters[f.GetName()] {
			return OutOfModel("HTTP filter %s on %s", f.GetName(), where)
		}
	}
	if hcm.GetLocalReplyConfig() != nil {
		return OutOfModel("local_reply_config (rewritten local replies) on %s", where)
	}
	return nil
}

func filterIndex(hcm *hcmv3.HttpConnectionManager, name string) int {
	for i, f := range hcm.GetHttpFilters() {
		if f.GetName() == name {
			return i
		}
	}
	return -1
}

// firstRBACIndex is the position of the first RBAC filter (len of the filters when none).
func firstRBACIndex(hcm *hcmv3.HttpConnectionManager) int {
	for i, f := range hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.rbac" || strings.HasPrefix(f.GetName(), "envoy.filters.http.rbac") {
			return i
		}
	}
	return len(hcm.GetHttpFilters())
}

// suppressEnvoyHeaders reads the router filter's suppress_envoy_headers.
func suppressEnvoyHeaders(hcm *hcmv3.HttpConnectionManager) bool {
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.router" {
			r := &routerv3.Router{}
			if f.GetTypedConfig().UnmarshalTo(r) == nil {
				return r.GetSuppressEnvoyHeaders()
			}
		}
	}
	return false
}

// reply finishes an HTTP exchange at a proxy: server header, access-log entry.
func (h *hop) reply(p *Proxy, hcm *hcmv3.HttpConnectionManager, entry outcome.LogEntry, resp Response, flags, details, upstreamCluster string) Response {
	resp = resp.clone()
	if hcm != nil {
		server := hcm.GetServerName()
		if server == "" {
			server = "envoy"
		}
		switch hcm.GetServerHeaderTransformation() {
		case hcmv3.HttpConnectionManager_OVERWRITE:
			resp.Headers.Set("server", server)
		case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
			if resp.Headers.Get("server") == "" {
				resp.Headers.Set("server", server)
			}
		}
	} else if resp.Headers.Get("server") == "" {
		// A local reply without a connection manager config is still Envoy's.
		resp.Headers.Set("server", "envoy")
	}
	if resp.Reset {
		h.logConn(p, entry, flags, details)
		return resp
	}
	entry["response_code"] = strconv.Itoa(resp.Status)
	entry["response_flags"] = flags
	entry["response_code_details"] = details
	entry["upstream_cluster"] = upstreamCluster
	h.res.log(p, entry)
	return resp
}

func (h *hop) logConn(p *Proxy, entry outcome.LogEntry, flags, details string) {
	entry["response_code"] = "0"
	entry["response_flags"] = flags
	if details != "-" {
		entry["response_code_details"] = details
	}
	h.res.log(p, entry)
}

// findRoute finds the route Envoy chooses in the virtual host the simulation matched: in the route
// configuration RDS delivered or, for a connection manager with its routes inline (a sidecar's
// inbound chains; the simulation names no route configuration then), in that one. The route is
// matched again here, in order, on the path and the request headers: Istio's simulation reports
// a name only (VirtualService routes without a name all share one) and matches on the path alone.
// A match the model cannot evaluate (query parameters, metadata) is an error: out of model.
func (h *hop) findRoute(p *Proxy, hcm *hcmv3.HttpConnectionManager, r simulation.Result, req Request) (routeContext, error) {
	var rc *route.RouteConfiguration
	if inline := hcm.GetRouteConfig(); inline != nil && (r.RouteConfigMatched == "" || r.RouteConfigMatched == inline.GetName()) {
		rc = inline
	}
	for _, x := range p.XDS.Routes {
		if x.GetName() == r.RouteConfigMatched {
			rc = x
		}
	}
	if rc == nil {
		return routeContext{}, nil
	}
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() != r.VirtualHostMatched {
			continue
		}
		for _, rt := range vh.GetRoutes() {
			ok, err := routeMatches(rt.GetMatch(), req)
			if err != nil {
				return routeContext{}, OutOfModel("route %q on %s: %v", rt.GetName(), p.Ref, err)
			}
			if ok {
				return routeContext{rc: rc, vh: vh, rt: rt}, nil
			}
		}
	}
	return routeContext{}, nil
}

// routeMatches is Envoy's RouteEntryImplBase::matches for the parts Istio generates: the path
// (without its query string) and the headers.
func routeMatches(m *route.RouteMatch, req Request) (bool, error) {
	path, _ := splitQuery(req.Path)
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(s string) string {
		if cs {
			return s
		}
		return strings.ToLower(s)
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		if !strings.HasPrefix(fold(path), fold(ps.Prefix)) {
			return false, nil
		}
	case *route.RouteMatch_Path:
		if fold(path) != fold(ps.Path) {
			return false, nil
		}
	case *route.RouteMatch_PathSeparatedPrefix:
		pre := fold(ps.PathSeparatedPrefix)
		if fp := fold(path); fp != pre && !strings.HasPrefix(fp, pre+"/") {
			return false, nil
		}
	case *route.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + ps.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, fmt.Errorf("path regex %q: %v", ps.SafeRegex.GetRegex(), err)
		}
		if !re.MatchString(path) {
			return false, nil
		}
	case nil:
		return false, errors.New("a route without a path match")
	default:
		return false, fmt.Errorf("path match %T", ps)
	}
	if len(m.GetQueryParameters()) > 0 || len(m.GetDynamicMetadata()) > 0 || len(m.GetFilterState()) > 0 || m.GetGrpc() != nil || m.GetTlsContext() != nil {
		return false, errors.New("a route match on query parameters, metadata, gRPC or TLS context")
	}
	for _, hm := range m.GetHeaders() {
		ok, err := headerMatches(hm, req)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// headerMatches is a route's header match on the request as the client sent it (headers Envoy
// adds before routing are out of model).
func headerMatches(hm *route.HeaderMatcher, req Request) (bool, error) {
	return rbac.MatchHeader(hm, func(name string) (string, bool, error) {
		name = strings.ToLower(name)
		switch name {
		case ":authority":
			return hostHeader(req), true, nil
		case ":method":
			return req.Method, true, nil
		case ":path":
			return req.Path, true, nil
		}
		if strings.HasPrefix(name, ":") || envoyAddedHeader(name) {
			return "", false, fmt.Errorf("a route match on header %s, which Envoy sets", name)
		}
		vs := req.Headers.Values(name)
		return strings.Join(vs, ","), len(vs) > 0, nil
	})
}

// clusterHTTP sends an HTTP request from proxy p to a cluster and returns the upstream's response,
// or Envoy's local reply, with the response flags and details p logs.
func (h *hop) clusterHTTP(p *Proxy, name string, req Request) (Response, string, string, error) {
	switch name {
	case "BlackHoleCluster":
		return replyNoHealthy, "UH", "no_healthy_upstream", nil
	case "PassthroughCluster":
		resp, err := h.external(ExternalRequest{Scheme: "http", Host: hostHeader(req), Port: req.Port, Method: req.Method, Path: req.Path, Header: req.Headers, Body: req.Body})
		return resp, "-", "via_upstream", err
	}
	c := findCluster(p, name)
	if c == nil {
		return replyNoCluster, "NC", "cluster_not_found", nil
	}
	if strings.HasPrefix(name, "inbound|") {
		return h.inboundApp(p, name, req)
	}
	port, _, host, ok := parseClusterName(name)
	if !ok {
		return Response{}, "", "", OutOfModel("cluster %q on %s is not an outbound cluster", name, p.Ref)
	}
	gw, target, isGW, err := h.world.Gateway(host, port)
	if err != nil {
		return Response{}, "", "", err
	}
	if !isGW {
		d, inMesh, err := h.meshDestination(c, host, port)
		if err != nil {
			return Response{}, "", "", err
		}
		if inMesh {
			return h.toWorkload(p, c, d, req)
		}
	}
	up, err := clusterTLS(c, isGW && gw != nil && gw.Labels[tlsModeLabel] == "istio")
	if err != nil {
		return Response{}, "", "", err
	}
	if isGW {
		call := simulation.Call{Address: gw.IP, Port: target, Protocol: simulation.HTTP, HostHeader: hostHeader(req), Path: req.Path,
			CallMode: simulation.CallModeGateway, Sni: up.sni}
		down := downstream{sni: up.sni}
		switch {
		case up.mtls:
			call.TLS, down.principal, down.tls = simulation.MTLS, p.Identity, true
		case up.simple:
			call.TLS, down.tls = simulation.TLS, true
		default:
			call.TLS = simulation.Plaintext
		}
		resp, err := h.httpProxy(gw, call, req, down)
		if err != nil {
			return Response{}, "", "", err
		}
		if resp.Reset {
			if up.mtls || up.simple {
				return replyTLSFailure, "UF", "upstream_reset_before_response_started{connection_failure}", nil
			}
			return replyResetUpstrem, "UC", "upstream_reset_before_response_started{connection_termination}", nil
		}
		return resp, "-", "via_upstream", nil
	}
	if err := notMeshService(p, host); err != nil {
		return Response{}, "", "", err
	}
	if up.mtls {
		return Response{}, "", "", OutOfModel("mutual TLS from %s to external host %s", p.Ref, host)
	}
	if err := originalDstAtGateway(p, c); err != nil {
		return Response{}, "", "", err
	}
	ext := ExternalRequest{Scheme: "http", Host: hostHeader(req), Port: endpointPort(c, port), Method: req.Method, Path: req.Path, Header: req.Headers, Body: req.Body}
	if up.simple {
		ext.Scheme = "https"
		ext.SNI = up.sni
		if ext.SNI == "" {
			ext.SNI = host
		}
	}
	resp, err := h.external(ext)
	return resp, "-", "via_upstream", err
}

// tcpProxy runs a connection through a proxy whose matched chain should be a TCP proxy.
func (h *hop) tcpProxy(p *Proxy, call simulation.Call, s stream, down downstream) (Response, bool, error) {
	entry := outcome.LogEntry{"method": "-", "path": "-", "protocol": "-", "requested_server_name": orDash(call.Sni)}
	r, l, fc, err := h.simulate(p, call)
	if err != nil {
		return Response{}, false, err
	}
	if r.Error != nil {
		if connectionErr(r.Error) {
			h.logConn(p, entry, "NR", "filter_chain_not_found")
			return Response{Reset: true}, false, nil
		}
		return Response{}, false, OutOfModel("Envoy behaviour after %v on %s", r.Error, p.Ref)
	}
	hcm, err := extractHCM(fc)
	if err != nil {
		return Response{}, false, err
	}
	if hcm != nil {
		if s.tls && fc.GetTransportSocket() == nil {
			// TLS bytes into an HTTP parser: the codec fails and the connection closes.
			h.logConn(p, entry, "DPE", "codec_error")
			return Response{Reset: true}, false, nil
		}
		resp, err := h.httpProxy(p, call, s.req, down)
		return resp, true, err
	}
	return h.tcpChain(p, l, fc, r.ClusterMatched, s, down)
}

// tcpChain applies the network RBAC filters of a TCP chain, then forwards to its cluster.
func (h *hop) tcpChain(p *Proxy, l *listener.Listener, fc *listener.FilterChain, clusterName string, s stream, down downstream) (Response, bool, error) {
	entry := outcome.LogEntry{"method": "-", "path": "-", "protocol": "-", "requested_server_name": orDash(down.sni)}
	if !p.Gateway {
		entry["requested_server_name"] = orDash(s.sni)
	}
	tp, err := extractTCPProxy(fc)
	if err != nil {
		return Response{}, false, err
	}
	if n := len(tp.GetWeightedClusters().GetClusters()); n > 1 {
		return Response{}, false, OutOfModel("TCP proxy weighted over %d clusters on %s", n, p.Ref)
	}
	if tp != nil && clusterName == "" {
		clusterName = tp.GetCluster()
	}
	filters, err := rbac.FiltersForChain(l, fc)
	if err != nil {
		return Response{}, false, OutOfModel("RBAC filters on %s: %v", p.Ref, err)
	}
	if len(filters) > 0 {
		d, err := rbac.Evaluate(filters, rbac.Request{Principal: down.principal, DownstreamTLS: down.tls, RequestedServerName: down.sni})
		if err != nil {
			return Response{}, false, OutOfModel("RBAC evaluation on %s: %v", p.Ref, err)
		}
		h.res.tracef("%s: network RBAC %s", p.Ref, d)
		if !d.Allowed {
			entry["upstream_cluster"] = clusterName
			entry["connection_termination_details"] = d.ResponseCodeDetails()
			h.logConn(p, entry, "-", "-")
			return Response{Reset: true}, false, nil
		}
	}
	entry["upstream_cluster"] = clusterName
	resp, flags, err := h.clusterTCP(p, clusterName, s)
	if err != nil {
		return Response{}, false, err
	}
	h.logConn(p, entry, flags, "-")
	return resp, false, nil
}

// clusterTCP forwards a TCP stream from proxy p to a cluster.
func (h *hop) clusterTCP(p *Proxy, name string, s stream) (Response, string, error) {
	switch name {
	case "BlackHoleCluster":
		return Response{Reset: true}, "UH", nil
	case "PassthroughCluster":
		resp, err := h.external(streamToExternal(s, s.req.Port))
		return resp, "-", err
	case "":
		return Response{}, "", OutOfModel("TCP proxy without a cluster on %s", p.Ref)
	}
	c := findCluster(p, name)
	if c == nil {
		return Response{Reset: true}, "NC", nil
	}
	port, _, host, ok := parseClusterName(name)
	if !ok {
		return Response{}, "", OutOfModel("cluster %q on %s is not an outbound cluster", name, p.Ref)
	}
	gw, target, isGW, err := h.world.Gateway(host, port)
	if err != nil {
		return Response{}, "", err
	}
	if !isGW {
		d, inMesh, err := h.meshDestination(c, host, port)
		if err != nil {
			return Response{}, "", err
		}
		if inMesh {
			return Response{}, "", OutOfModel("a TCP connection from %s to the mesh workload %s", p.Ref, d.Ref)
		}
	}
	up, err := clusterTLS(c, isGW && gw != nil && gw.Labels[tlsModeLabel] == "istio")
	if err != nil {
		return Response{}, "", err
	}
	if isGW {
		call := simulation.Call{Address: gw.IP, Port: target, Protocol: simulation.TCP, CallMode: simulation.CallModeGateway}
		down := downstream{}
		switch {
		case up.mtls:
			call.TLS, call.Sni, down.principal, down.tls, down.sni = simulation.MTLS, up.sni, p.Identity, true, up.sni
		case up.simple:
			return Response{}, "", OutOfModel("TLS origination toward gateway %s from %s", gw.Ref, p.Ref)
		case s.tls:
			// The application's own TLS arrives at the gateway unchanged.
			call.TLS, call.Sni, down.sni = simulation.TLS, s.sni, s.sni
		default:
			call.TLS = simulation.Plaintext
			call.Protocol = simulation.HTTP
			call.HostHeader, call.Path = hostHeader(s.req), s.req.Path
		}
		resp, _, err := h.tcpProxy(gw, call, s, down)
		if err != nil {
			return Response{}, "", err
		}
		if resp.Reset {
			return resp, "UF", nil
		}
		return resp, "-", nil
	}
	if err := notMeshService(p, host); err != nil {
		return Response{}, "", err
	}
	if up.mtls {
		return Response{}, "", OutOfModel("mutual TLS from %s to external host %s", p.Ref, host)
	}
	if err := originalDstAtGateway(p, c); err != nil {
		return Response{}, "", err
	}
	if up.simple {
		if s.tls {
			return Response{}, "", OutOfModel("TLS originated over the application's own TLS on %s", p.Ref)
		}
		ext := streamToExternal(s, endpointPort(c, port))
		ext.Scheme, ext.SNI = "https", orDefault(up.sni, host)
		resp, err := h.external(ext)
		return resp, "-", err
	}
	resp, err := h.external(streamToExternal(s, endpointPort(c, port)))
	return resp, "-", err
}

func streamToExternal(s stream, port int) ExternalRequest {
	e := ExternalRequest{Scheme: "http", Host: hostHeader(s.req), Port: port, Method: s.req.Method, Path: s.req.Path, Header: s.req.Headers, Body: s.req.Body}
	if s.tls {
		e.Scheme, e.SNI, e.Host = "https", s.sni, s.req.Host
	}
	return e
}

// endpointPort is the port Envoy connects to for a cluster: the port of its inline endpoints (a
// DNS ServiceEntry's, where an endpoint or targetPort may differ from the Service port), else
// the Service port of its name.
func endpointPort(c *cluster.Cluster, servicePort int) int {
	port := 0
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			p := int(e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
			if p == 0 || (port != 0 && p != port) {
				return servicePort
			}
			port = p
		}
	}
	if port == 0 {
		return servicePort
	}
	return port
}

func findCluster(p *Proxy, name string) *cluster.Cluster {
	for _, c := range p.XDS.Clusters {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// parseClusterName reads Istio's outbound|port|subset|host.
func parseClusterName(name string) (port int, subset, host string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return 0, "", "", false
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, "", "", false
	}
	return port, parts[2], parts[3], true
}

// tlsModeLabel is the pod label Istio copies into endpoint metadata (tlsMode) for auto mTLS.
const tlsModeLabel = "security.istio.io/tlsMode"

// clusterTLS reads a cluster's upstream TLS: its transport socket or, with auto mTLS, the
// transport_socket_matches entry for endpoints labelled tlsMode=istio. Istio decides per endpoint
// by the pod's security.istio.io/tlsMode label; gateway pods carry it only when their deployment
// sets it (the gateway chart and gateway injection template do not).
func clusterTLS(c *cluster.Cluster, istioEndpoint bool) (upstreamTLS, error) {
	ts := c.GetTransportSocket()
	if ts == nil && istioEndpoint {
		for _, m := range c.GetTransportSocketMatches() {
			if m.GetMatch().GetFields()["tlsMode"].GetStringValue() == "istio" {
				ts = m.GetTransportSocket()
				break
			}
		}
	}
	if ts == nil || ts.GetName() != "envoy.transport_sockets.tls" {
		return upstreamTLS{}, nil
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		return upstreamTLS{}, fmt.Errorf("cluster %s: upstream TLS context: %w", c.GetName(), err)
	}
	out := upstreamTLS{sni: u.GetSni()}
	for _, s := range u.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		if s.GetName() == "default" {
			out.mtls = true
		}
	}
	out.simple = !out.mtls
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// notMeshService refuses a cluster of an in-mesh Service that is not a gateway: the model forwards
// only to gateways and to external hosts (a mesh workload's sidecar, its Service's targetPort and
// its answer are not modelled).
func notMeshService(p *Proxy, host string) error {
	if strings.HasSuffix(host, ".svc.cluster.local") {
		return OutOfModel("in-mesh Service %s from %s: the model forwards only to gateways and external hosts", host, p.Ref)
	}
	return nil
}

// external sends a request out of the mesh and records it in the trace. The World answers as the
// host's declared ports and protocols do (a request in the wrong protocol for the port is out of
// model there: ServeExternal).
func (h *hop) external(req ExternalRequest) (Response, error) {
	resp, err := h.world.External(req)
	h.res.tracef("external %s://%s:%d sni=%q %s %s -> %d (err=%v)", req.Scheme, req.Host, req.Port, req.SNI, req.Method, req.Path, resp.Status, err)
	return resp, err
}

// rbacHeaders are the request's headers as an RBAC filter's matchers see them: one value per
// name, several joined by "," as Envoy's header map joins them for a match.
func rbacHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return out
}

// envoyAddedHeader reports whether Envoy may have set the header before the RBAC filter runs (the
// model does not know its value): x-forwarded-*, x-request-id, x-envoy-*, tracing headers.
func envoyAddedHeader(name string) bool {
	for _, p := range []string{"x-forwarded-", "x-envoy-", "x-b3-", "x-ot-span-context"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	switch name {
	case "x-request-id", "traceparent", "tracestate", "b3", "x-client-trace-id":
		return true
	}
	return false
}

// originalDstAtGateway refuses what the model cannot know about an external host's endpoints at a
// gateway. Istio gives a gateway an EDS cluster where a sidecar would forward to the original
// destination (a ServiceEntry with resolution NONE: "gateways cannot use passthrough clusters"),
// and its endpoints come by EDS, which the model does not read; Istio's egress gateway task
// warns that NONE there loops, this Istio answers from an empty endpoint set instead.
func originalDstAtGateway(p *Proxy, c *cluster.Cluster) error {
	if !p.Gateway {
		return nil
	}
	switch c.GetType() {
	case cluster.Cluster_ORIGINAL_DST, cluster.Cluster_EDS:
		return OutOfModel("cluster %s on gateway %s takes its endpoints from %s (a ServiceEntry with resolution NONE or STATIC): the model does not read endpoints", c.GetName(), p.Ref, c.GetType())
	}
	return nil
}
