package envoymodel

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// routeContext is the route the simulation matched with the virtual host and route configuration
// holding it: Envoy reads behaviour from all three levels.
type routeContext struct {
	rc *route.RouteConfiguration
	vh *route.VirtualHost
	rt *route.Route
}

// headerOps is one level's header mutation (route, virtual host or route configuration).
type headerOps struct {
	add    []*core.HeaderValueOption
	remove []string
}

// routeBehaviour is what the model applies from a matched route beyond its action. Every field of
// the route, virtual host and route configuration that can change a request's outcome is either
// read into it or refused by readRoute as out of model.
type routeBehaviour struct {
	// request and response header mutations in Envoy's evaluation order (later wins).
	request, response []headerOps
	fault             *fault
	retry             *route.RetryPolicy
	// timeout is the route timeout (0: disabled); Envoy's default without the field is 15s.
	timeout time.Duration
	// attemptCountInRequest/Response: the virtual host's include_request_attempt_count (Istio sets
	// it) and include_attempt_count_in_response: x-envoy-attempt-count on the upstream request or
	// the downstream response.
	attemptCountInRequest, attemptCountInResponse bool
	// clusterNotFound is the status for a cluster missing from CDS.
	clusterNotFound int
}

// fault is an HTTP fault filter configuration that applies to every request (100%).
type fault struct {
	delay       time.Duration
	abortStatus int
}

// routeFlagOrder is the order Envoy prints response flags in (source/common/stream_info/utility.h).
var routeFlagOrder = []string{"DC", "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "URX", "NR", "DI", "FI"}

// addFlag adds a response flag to a flags field ("-" for none), in Envoy's order.
func addFlag(flags, f string) string {
	var set []string
	if flags != "-" && flags != "" {
		set = strings.Split(flags, ",")
	}
	if !slices.Contains(set, f) {
		set = append(set, f)
	}
	slices.SortStableFunc(set, func(a, b string) int {
		ia, ib := slices.Index(routeFlagOrder, a), slices.Index(routeFlagOrder, b)
		if ia < 0 {
			ia = len(routeFlagOrder)
		}
		if ib < 0 {
			ib = len(routeFlagOrder)
		}
		return ia - ib
	})
	return strings.Join(set, ",")
}

const faultFilter = "envoy.filters.http.fault"

// readRoute reads the behaviour of the matched route, or says which feature is out of model.
func readRoute(where string, rc routeContext) (*routeBehaviour, error) {
	oom := func(format string, args ...any) error {
		return OutOfModel("%s on %s", fmt.Sprintf(format, args...), where)
	}
	b := &routeBehaviour{clusterNotFound: 503}
	rt, vh, c := rc.rt, rc.vh, rc.rc

	// Per-filter configuration: the most specific level wins (route > virtual host > route config).
	var faultAny *faultv3.HTTPFault
	for _, level := range []struct {
		name string
		cfg  map[string]*anypb.Any
	}{{"route configuration", c.GetTypedPerFilterConfig()}, {"virtual host", vh.GetTypedPerFilterConfig()}, {"route", rt.GetTypedPerFilterConfig()}} {
		for name, a := range level.cfg {
			if name != faultFilter {
				return nil, oom("per-route configuration of HTTP filter %s (%s)", name, level.name)
			}
			f := &faultv3.HTTPFault{}
			if err := unmarshalFilterConfig(a, f); err != nil {
				return nil, oom("fault filter configuration (%s) that does not decode: %v", level.name, err)
			}
			faultAny = f
		}
	}
	if faultAny != nil {
		f, err := readFault(faultAny)
		if err != nil {
			return nil, oom("%v", err)
		}
		b.fault = f
	}

	// Route configuration level.
	if len(c.GetInternalOnlyHeaders()) > 0 {
		return nil, oom("internal_only_headers")
	}
	if len(c.GetRequestMirrorPolicies()) > 0 || len(vh.GetRequestMirrorPolicies()) > 0 {
		return nil, oom("request mirroring")
	}
	if len(c.GetClusterSpecifierPlugins()) > 0 {
		return nil, oom("cluster specifier plugins")
	}
	// Virtual host level.
	if vh.GetCors() != nil {
		return nil, oom("a virtual host CORS policy")
	}
	if vh.GetHedgePolicy() != nil {
		return nil, oom("a hedge policy")
	}
	if vh.GetRetryPolicyTypedConfig() != nil {
		return nil, oom("a typed retry policy")
	}
	if vh.GetRequireTls() != route.VirtualHost_NONE {
		return nil, oom("require_tls %s", vh.GetRequireTls())
	}
	b.attemptCountInResponse = vh.GetIncludeAttemptCountInResponse()
	b.attemptCountInRequest = vh.GetIncludeRequestAttemptCount()
	b.retry = vh.GetRetryPolicy()

	// Route level.
	if f := rt.GetMatch().GetRuntimeFraction(); f != nil && !fullPercent(f.GetDefaultValue()) {
		return nil, oom("a route matched for a fraction of requests (runtime_fraction)")
	}
	if len(rt.GetMatch().GetQueryParameters()) > 0 || len(rt.GetMatch().GetDynamicMetadata()) > 0 || len(rt.GetMatch().GetFilterState()) > 0 {
		return nil, oom("route match on query parameters or metadata")
	}

	// Header mutations: by default the least specific level wins, so Envoy evaluates the route's
	// first and the route configuration's last; most_specific_header_mutations_wins reverses it.
	levels := []headerOps{
		{rt.GetRequestHeadersToAdd(), rt.GetRequestHeadersToRemove()},
		{vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove()},
		{c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove()},
	}
	resp := []headerOps{
		{rt.GetResponseHeadersToAdd(), rt.GetResponseHeadersToRemove()},
		{vh.GetResponseHeadersToAdd(), vh.GetResponseHeadersToRemove()},
		{c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove()},
	}
	if c.GetMostSpecificHeaderMutationsWins() {
		slices.Reverse(levels)
		slices.Reverse(resp)
	}
	for _, l := range append(slices.Clone(levels), resp...) {
		if err := checkHeaderOps(l); err != nil {
			return nil, oom("%v", err)
		}
	}
	b.request, b.response = levels, resp

	a := rt.GetRoute()
	if a == nil {
		return b, nil
	}
	if len(a.GetRequestMirrorPolicies()) > 0 {
		return nil, oom("request mirroring")
	}
	if a.GetClusterHeader() != "" || a.GetClusterSpecifierPlugin() != "" || a.GetInlineClusterSpecifierPlugin() != nil {
		return nil, oom("a cluster chosen by header or plugin")
	}
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		if len(wc.GetRequestHeadersToAdd()) > 0 || len(wc.GetRequestHeadersToRemove()) > 0 || len(wc.GetResponseHeadersToAdd()) > 0 ||
			len(wc.GetResponseHeadersToRemove()) > 0 || len(wc.GetTypedPerFilterConfig()) > 0 || wc.GetHostRewriteLiteral() != "" {
			return nil, oom("per-cluster header mutation or configuration in weighted clusters")
		}
	}
	if a.GetPathRewritePolicy() != nil {
		return nil, oom("a path rewrite policy extension")
	}
	if a.GetAutoHostRewrite() != nil || a.GetHostRewriteHeader() != "" || a.GetHostRewritePathRegex() != nil {
		return nil, oom("a host rewrite from DNS, a header or the path")
	}
	if a.GetAppendXForwardedHost() {
		return nil, oom("append_x_forwarded_host")
	}
	if a.GetCors() != nil {
		return nil, oom("a route CORS policy")
	}
	if a.GetHedgePolicy() != nil {
		return nil, oom("a hedge policy")
	}
	if a.GetRetryPolicyTypedConfig() != nil {
		return nil, oom("a typed retry policy")
	}
	if a.GetInternalRedirectPolicy() != nil || a.GetInternalRedirectAction() == route.RouteAction_HANDLE_INTERNAL_REDIRECT {
		return nil, oom("internal redirects")
	}
	if a.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration() > 0 {
		return nil, oom("max_stream_duration")
	}
	if a.GetRetryPolicy() != nil {
		b.retry = a.GetRetryPolicy()
	}
	if b.retry != nil {
		if len(b.retry.GetRetriableHeaders()) > 0 || len(b.retry.GetRetriableRequestHeaders()) > 0 || b.retry.GetRetryPriority() != nil ||
			len(b.retry.GetRetryOptionsPredicates()) > 0 {
			return nil, oom("a retry policy with header conditions or retry extensions")
		}
	}
	b.timeout = 15 * time.Second
	if a.GetTimeout() != nil {
		b.timeout = a.GetTimeout().AsDuration()
	}
	if a.GetClusterNotFoundResponseCode() == route.RouteAction_NOT_FOUND {
		b.clusterNotFound = 404
	} else if a.GetClusterNotFoundResponseCode() == route.RouteAction_INTERNAL_SERVER_ERROR {
		b.clusterNotFound = 500
	}
	return b, nil
}

// perTryOrIdleTimeout: timeouts other than the route timeout that a slow upstream would hit.
func perTryOrIdleTimeout(rt *route.Route, b *routeBehaviour) string {
	if b.retry.GetPerTryTimeout().AsDuration() > 0 || b.retry.GetPerTryIdleTimeout().AsDuration() > 0 {
		return "a retry per-try timeout"
	}
	if rt.GetRoute().GetIdleTimeout().AsDuration() > 0 {
		return "a route idle timeout"
	}
	return ""
}

// unmarshalFilterConfig reads a per-filter config, unwrapping route.FilterConfig.
func unmarshalFilterConfig(a *anypb.Any, m proto.Message) error {
	if a.MessageIs(&route.FilterConfig{}) {
		fc := &route.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			return err
		}
		if fc.GetDisabled() {
			return fmt.Errorf("a disabled filter")
		}
		a = fc.GetConfig()
	}
	return a.UnmarshalTo(m)
}

func readFault(f *faultv3.HTTPFault) (*fault, error) {
	if len(f.GetHeaders()) > 0 || len(f.GetDownstreamNodes()) > 0 || f.GetUpstreamCluster() != "" {
		return nil, fmt.Errorf("fault injection restricted by headers, downstream nodes or upstream cluster")
	}
	if f.GetResponseRateLimit() != nil {
		return nil, fmt.Errorf("fault injection of a response rate limit")
	}
	out := &fault{}
	if d := f.GetDelay(); d != nil {
		switch {
		case d.GetPercentage() == nil || zeroPercent(d.GetPercentage()):
		case !fullPercent(d.GetPercentage()):
			return nil, fmt.Errorf("fault delay for %s of requests", percentString(d.GetPercentage()))
		case d.GetFixedDelay() == nil:
			return nil, fmt.Errorf("fault delay taken from a request header")
		default:
			out.delay = d.GetFixedDelay().AsDuration()
		}
	}
	if a := f.GetAbort(); a != nil {
		switch {
		case a.GetPercentage() == nil || zeroPercent(a.GetPercentage()):
		case !fullPercent(a.GetPercentage()):
			return nil, fmt.Errorf("fault abort for %s of requests", percentString(a.GetPercentage()))
		case a.GetHttpStatus() == 0:
			return nil, fmt.Errorf("fault abort with a gRPC status or a status taken from a request header")
		default:
			out.abortStatus = int(a.GetHttpStatus())
		}
	}
	if out.delay == 0 && out.abortStatus == 0 {
		return nil, nil
	}
	return out, nil
}

func denominator(p *typev3.FractionalPercent) uint32 {
	switch p.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10000
	case typev3.FractionalPercent_MILLION:
		return 1000000
	}
	return 100
}

func fullPercent(p *typev3.FractionalPercent) bool { return p.GetNumerator() >= denominator(p) }
func zeroPercent(p *typev3.FractionalPercent) bool { return p.GetNumerator() == 0 }
func percentString(p *typev3.FractionalPercent) string {
	return strconv.FormatFloat(float64(p.GetNumerator())*100/float64(denominator(p)), 'f', -1, 64) + "%"
}

// checkHeaderOps refuses what applyHeaders does not model: pseudo-headers and Host, formatted
// values (%...%) and append actions it does not know.
func checkHeaderOps(l headerOps) error {
	for _, name := range l.remove {
		if strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
			return fmt.Errorf("removal of header %s", name)
		}
	}
	for _, o := range l.add {
		name := o.GetHeader().GetKey()
		if strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
			return fmt.Errorf("header mutation of %s", name)
		}
		if strings.Contains(headerValue(o), "%") {
			return fmt.Errorf("header %s with a formatted value %q", name, headerValue(o))
		}
		switch o.GetAppendAction() {
		case core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, core.HeaderValueOption_ADD_IF_ABSENT,
			core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, core.HeaderValueOption_OVERWRITE_IF_EXISTS:
		default:
			return fmt.Errorf("header %s with append action %s", name, o.GetAppendAction())
		}
	}
	return nil
}

func headerValue(o *core.HeaderValueOption) string {
	if v := o.GetHeader().GetRawValue(); len(v) > 0 {
		return string(v)
	}
	return o.GetHeader().GetValue()
}

// applyHeaders applies header mutations as Envoy's HeaderParser::evaluateHeaders does, level by
// level: removals first; then every addition is decided against the headers as they are after the
// removals (append action; the deprecated append field, when set, wins: true is
// APPEND_IF_EXISTS_OR_ADD, false OVERWRITE_IF_EXISTS_OR_ADD; empty values are skipped unless
// keep_empty_value); then all overwrites are set, then all appends added.
func applyHeaders(h http.Header, levels []headerOps) {
	type kv struct{ name, value string }
	for _, l := range levels {
		for _, name := range l.remove {
			h.Del(name)
		}
		var overwrite, add []kv
		for _, o := range l.add {
			name, value := o.GetHeader().GetKey(), headerValue(o)
			if value == "" && !o.GetKeepEmptyValue() {
				continue
			}
			action := o.GetAppendAction()
			if o.GetAppend() != nil {
				action = core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
				if o.GetAppend().GetValue() {
					action = core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
				}
			}
			_, exists := h[http.CanonicalHeaderKey(name)]
			switch action {
			case core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				add = append(add, kv{name, value})
			case core.HeaderValueOption_ADD_IF_ABSENT:
				if !exists {
					add = append(add, kv{name, value})
				}
			case core.HeaderValueOption_OVERWRITE_IF_EXISTS:
				if exists {
					overwrite = append(overwrite, kv{name, value})
				}
			case core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				overwrite = append(overwrite, kv{name, value})
			}
		}
		for _, o := range overwrite {
			h.Set(o.name, o.value)
		}
		for _, a := range add {
			h.Add(a.name, a.value)
		}
	}
}

func (b *routeBehaviour) mutatesResponse() bool {
	for _, l := range b.response {
		if len(l.add) > 0 || len(l.remove) > 0 {
			return true
		}
	}
	return false
}

// rewrite applies the route action's path and host rewrites to the request the upstream sees; a
// rewritten path leaves the original in x-envoy-original-path unless the router suppresses Envoy's
// headers.
func rewrite(where string, rt *route.Route, req Request, originalPath bool) (Request, error) {
	a := rt.GetRoute()
	if a == nil {
		return req, nil
	}
	path, query := splitQuery(req.Path)
	switch {
	case a.GetPrefixRewrite() != "":
		matched, err := matchedPrefix(where, rt)
		if err != nil {
			return req, err
		}
		if !strings.HasPrefix(path, matched) {
			return req, OutOfModel("prefix rewrite of %q, which does not start with the matched %q, on %s", path, matched, where)
		}
		req.Path = a.GetPrefixRewrite() + req.Path[len(matched):]
		req.Headers = cloneHeader(req.Headers)
		if originalPath {
			req.Headers.Set("X-Envoy-Original-Path", path+query)
		}
	case a.GetRegexRewrite() != nil:
		re, err := regexp.Compile(a.GetRegexRewrite().GetPattern().GetRegex())
		if err != nil {
			return req, OutOfModel("regex rewrite %q that Go's RE2 does not compile on %s", a.GetRegexRewrite().GetPattern().GetRegex(), where)
		}
		req.Path = re.ReplaceAllString(path, re2Substitution(a.GetRegexRewrite().GetSubstitution())) + query
		req.Headers = cloneHeader(req.Headers)
		if originalPath {
			req.Headers.Set("X-Envoy-Original-Path", path+query)
		}
	}
	if l := a.GetHostRewriteLiteral(); l != "" {
		req.Authority = l
	}
	return req, nil
}

// matchedPrefix is the part of the path a route's match consumed, for prefix_rewrite.
func matchedPrefix(where string, rt *route.Route) (string, error) {
	m := rt.GetMatch()
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		return "", OutOfModel("a case-insensitive route match with prefix rewrite on %s", where)
	}
	switch {
	case m.GetPrefix() != "" || m.GetPathSpecifier() == nil:
		return m.GetPrefix(), nil
	case m.GetPathSeparatedPrefix() != "":
		return m.GetPathSeparatedPrefix(), nil
	case m.GetPath() != "":
		return m.GetPath(), nil
	}
	return "", OutOfModel("prefix rewrite after a %T match on %s", m.GetPathSpecifier(), where)
}

// re2Substitution turns RE2's \N references into Go's ${N}.
func re2Substitution(s string) string {
	return regexp.MustCompile(`\\(\d)`).ReplaceAllString(strings.ReplaceAll(s, "$", "$$"), "$${$1}")
}

func splitQuery(p string) (path, query string) {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

func cloneHeader(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	return h.Clone()
}

// redirectLocation is the Location of a redirect route, as Envoy's Http::Utility::newUri builds it
// (source/common/http/utility.cc) after the redirect's path rewrite (RouteEntryImplBase::
// rewritePathHeader): scheme, host (the request's, its port kept unless a port is set or the
// scheme changes from its default port), port, path, and the query unless strip_query.
func redirectLocation(where string, rt *route.Route, req Request, scheme string) (string, int, error) {
	r := rt.GetRedirect()
	status := 301
	switch r.GetResponseCode() {
	case route.RedirectAction_FOUND:
		status = 302
	case route.RedirectAction_SEE_OTHER:
		status = 303
	case route.RedirectAction_TEMPORARY_REDIRECT:
		status = 307
	case route.RedirectAction_PERMANENT_REDIRECT:
		status = 308
	}
	path := req.Path
	switch {
	case r.GetPrefixRewrite() != "":
		matched, err := matchedPrefix(where, rt)
		if err != nil {
			return "", 0, err
		}
		p, _ := splitQuery(path)
		if !strings.HasPrefix(p, matched) {
			return "", 0, OutOfModel("redirect prefix rewrite of %q, which does not start with %q, on %s", p, matched, where)
		}
		path = r.GetPrefixRewrite() + path[len(matched):]
	case r.GetRegexRewrite() != nil:
		re, err := regexp.Compile(r.GetRegexRewrite().GetPattern().GetRegex())
		if err != nil {
			return "", 0, OutOfModel("redirect regex %q that Go's RE2 does not compile on %s", r.GetRegexRewrite().GetPattern().GetRegex(), where)
		}
		p, q := splitQuery(path)
		path = re.ReplaceAllString(p, re2Substitution(r.GetRegexRewrite().GetSubstitution())) + q
	}
	if r.GetSchemeRedirect() != "" {
		scheme = r.GetSchemeRedirect()
	} else if r.GetHttpsRedirect() {
		scheme = "https"
	}
	port := ""
	if r.GetPortRedirect() != 0 {
		port = ":" + strconv.Itoa(int(r.GetPortRedirect()))
	}
	host := r.GetHostRedirect()
	if host == "" {
		host = hostHeader(req)
		if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
			reqPort := host[i:]
			if port != "" || (scheme == "https" && reqPort == ":80") || (scheme == "http" && reqPort == ":443") {
				host = host[:i]
			}
		}
	}
	pathRedirectHasQuery := strings.Contains(r.GetPathRedirect(), "?")
	if pr := r.GetPathRedirect(); pr != "" {
		if pathRedirectHasQuery {
			path = pr
		} else {
			_, q := splitQuery(path)
			if strings.HasPrefix(q, "#") {
				q = ""
			}
			path = pr + q
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !pathRedirectHasQuery && r.GetStripQuery() {
		if i := strings.Index(path, "?"); i >= 0 {
			path = path[:i]
		}
	}
	return scheme + "://" + host + port + path, status, nil
}

// delayPath reads httpbin's /delay/N: the stand-in answers after N seconds (httpbin caps N at 10).
var delayPath = regexp.MustCompile(`^/delay/(\d+(?:\.\d+)?)$`)

// upstreamDelay is how long the external host takes to answer the path: N seconds for httpbin's
// /delay/N, nothing for other paths, unknown (ok=false) for paths that stream slowly.
func upstreamDelay(path string) (time.Duration, bool) {
	p, _ := splitQuery(path)
	if m := delayPath.FindStringSubmatch(p); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, false
		}
		f = min(f, 10)
		return time.Duration(f * float64(time.Second)), true
	}
	if strings.HasPrefix(p, "/delay") || strings.HasPrefix(p, "/drip") || strings.HasPrefix(p, "/stream") || strings.HasPrefix(p, "/range") {
		return 0, false
	}
	return 0, true
}

// retriable says whether an upstream outcome is retried under the policy: flags/details are what
// clusterHTTP reported for the attempt.
func retriable(where string, rp *route.RetryPolicy, resp Response, flags, details string) (bool, error) {
	if rp == nil {
		return false, nil
	}
	on := map[string]bool{}
	for _, s := range strings.Split(rp.GetRetryOn(), ",") {
		on[strings.TrimSpace(s)] = true
	}
	switch {
	case strings.Contains(flags, "UF"):
		return on["connect-failure"] || on["5xx"] || on["gateway-error"] || on["reset"], nil
	case strings.Contains(flags, "UC"):
		if on["reset-before-request"] {
			return false, OutOfModel("retry_on reset-before-request after a connection termination on %s", where)
		}
		return on["5xx"] || on["gateway-error"] || on["reset"], nil
	case details != "via_upstream":
		// Envoy's own reply before any upstream request (no healthy upstream, no cluster).
		return false, nil
	}
	s := resp.Status
	if resp.Headers.Get("grpc-status") != "" {
		return false, OutOfModel("retry policy %q and a gRPC response on %s", rp.GetRetryOn(), where)
	}
	switch {
	case on["5xx"] && s >= 500:
		return true, nil
	case on["gateway-error"] && s >= 502 && s <= 504:
		return true, nil
	case on["retriable-4xx"] && s == 409:
		return true, nil
	case on["envoy-ratelimited"] && resp.Headers.Get("x-envoy-ratelimited") != "":
		return true, nil
	case on["retriable-status-codes"] && slices.Contains(rp.GetRetriableStatusCodes(), uint32(s)):
		return true, nil
	}
	return false, nil
}
