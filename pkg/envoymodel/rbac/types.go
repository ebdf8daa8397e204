// Package rbac models Envoy's RBAC filters (envoy.filters.http.rbac and envoy.filters.network.rbac)
// as Istio generates them from AuthorizationPolicy, so that egressconf can predict whether a proxy
// allows or denies a request without running Envoy.
//
// The model follows Envoy's semantics (source/extensions/filters/common/rbac in envoyproxy/envoy):
// filters run in chain order (network filters at connection time, then the HTTP filters of the
// HttpConnectionManager); a filter whose rules have action DENY denies when any policy matches, one
// with action ALLOW denies when no policy matches, LOG never denies; shadow rules never decide. A
// policy matches when any of its permissions and any of its principals match. Policies are tried in
// lexical order of their names (Envoy keeps them in a std::map), so the reported policy of a DENY
// is the one Envoy puts in `rbac_access_denied_matched_policy[...]`.
//
// Anything the model does not implement makes Evaluate return an error: it never guesses. See
// docs/rbac-model.md for the list.
package rbac

import (
	"fmt"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Layer says where an RBAC filter runs.
type Layer string

const (
	// LayerNetwork is envoy.filters.network.rbac: evaluated once per connection, before any HTTP
	// processing. A denial closes the connection (the client sees a reset).
	LayerNetwork Layer = "network"
	// LayerHTTP is envoy.filters.http.rbac inside the HttpConnectionManager: evaluated per request.
	// A denial answers 403 with the body "RBAC: access denied".
	LayerHTTP Layer = "http"
)

// Actions as reported in Decision.Action.
const (
	ActionAllow = "ALLOW"
	ActionDeny  = "DENY"
	ActionLog   = "LOG"
)

// Well-known filter names and type URLs.
const (
	HTTPFilterName    = "envoy.filters.http.rbac"
	NetworkFilterName = "envoy.filters.network.rbac"

	HTTPRBACTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	NetworkRBACTypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
	HCMTypeURL         = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	HTTPExtAuthzType   = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	NetExtAuthzType    = "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"
)

// IstioPeerPrincipalKey is the filter-state key Istio matches the peer identity with when it builds
// policies for filter-state principals (waypoints) instead of `authenticated`.
const IstioPeerPrincipalKey = "io.istio.peer_principal"

// Request is what Envoy's RBAC engine sees of a connection and, for HTTP, of a request.
type Request struct {
	// Principal is the peer certificate's URI SAN, e.g. spiffe://cluster.local/ns/default/sa/sleep.
	// Empty when the downstream connection is not mutual TLS.
	Principal string
	// DownstreamTLS marks a TLS connection without a client certificate. A non-empty Principal
	// implies TLS. `authenticated` matches only TLS connections.
	DownstreamTLS bool
	// PeerSubject is the peer certificate's subject (RFC 2253), tried after the URI SAN by
	// `authenticated.principal_name`. Istio workload certificates have an empty subject.
	PeerSubject string

	// SourceIP is the address of the directly connected peer (direct_remote_ip, source_ip).
	SourceIP string
	// RemoteIP is the original client address as Envoy inferred it (x-forwarded-for, proxy
	// protocol). Empty means SourceIP. Used by remote_ip.
	RemoteIP string
	// DestinationIP and DestinationPort are the local address of the downstream connection: on
	// a gateway, the pod IP and the listener port (the Service targetPort, e.g. 8080), not the
	// Service port.
	DestinationIP   string
	DestinationPort uint32
	// RequestedServerName is the SNI of the downstream connection ("" when none).
	RequestedServerName string

	// HTTP says the request is HTTP: the fields below are set and HTTP RBAC filters apply.
	HTTP bool
	// Method is :method.
	Method string
	// Host is :authority (the Host header for HTTP/1.1), as the HttpConnectionManager passes it
	// on (after any port stripping it is configured for).
	Host string
	// Path is :path including the query string.
	Path string
	// Headers are the other request headers. Keys are matched case-insensitively. A header whose
	// name starts with ':' overrides the pseudo-header fields above.
	Headers map[string]string
	// UnknownHeader, when set, names headers the caller cannot know (those Envoy adds before the
	// filter: x-forwarded-*, x-request-id, x-envoy-*): a matcher on one that Headers lacks is
	// unsupported, never decided as absent.
	UnknownHeader func(name string) bool

	// DynamicMetadata is the stream's dynamic metadata by filter name (e.g. the JWT claims Istio
	// stores under istio_authn), used by `metadata` and `sourced_metadata` matchers.
	DynamicMetadata map[string]*structpb.Struct
	// FilterState holds string-serializable filter-state objects for `filter_state` principals.
	// When it has no IstioPeerPrincipalKey entry and Principal is set, Principal is used for it.
	FilterState map[string]string
}

// Decision is the outcome of Evaluate.
type Decision struct {
	// Allowed is false when some enforcing filter denied.
	Allowed bool
	// Action is, for a denial, the action of the filter that denied: DENY (a policy matched) or
	// ALLOW (no policy matched). For an allowed request it is ALLOW when at least one ALLOW filter
	// matched (MatchedPolicy then names the last such match) and "" otherwise.
	Action string
	// MatchedPolicy is the policy that decided, e.g.
	// ns[istio-system]-policy[external-deny-developer-yahoo-com]-rule[0]. Empty for a denial by an
	// ALLOW filter (Envoy logs "none").
	MatchedPolicy string
	// Layer of the filter that denied ("" when allowed).
	Layer Layer
	// FilterIndex is the index in the evaluated filter list of the filter that denied, -1 when
	// allowed.
	FilterIndex int
	// Logged lists the policies of LOG (audit) filters that matched.
	Logged []string
	// Shadow has one entry per filter with shadow rules, in order. Shadow rules never decide.
	Shadow []ShadowResult
}

// ShadowResult is what a filter's shadow rules would have decided.
type ShadowResult struct {
	FilterIndex int
	Layer       Layer
	// Action of the shadow rules.
	Action string
	// Allowed is what the shadow rules would have decided on their own.
	Allowed bool
	// EffectivePolicy is the matched shadow policy ("" when none): Envoy's
	// shadow_effective_policy_id.
	EffectivePolicy string
	// Err is set when the shadow rules use something the model does not support; it does not
	// affect the decision.
	Err error
}

// MatchedPolicyForLog is the policy as Envoy writes it into the access log on a denial:
// the DENY policy's name, or "none". Empty when the request was allowed.
func (d Decision) MatchedPolicyForLog() string {
	if d.Allowed {
		return ""
	}
	if d.MatchedPolicy == "" {
		return "none"
	}
	return d.MatchedPolicy
}

// ResponseCodeDetails is the %RESPONSE_CODE_DETAILS% (HTTP) or connection termination details
// (network) Envoy records on a denial, e.g. rbac_access_denied_matched_policy[none]. Empty when
// allowed.
func (d Decision) ResponseCodeDetails() string {
	if d.Allowed {
		return ""
	}
	return "rbac_access_denied_matched_policy[" + d.MatchedPolicyForLog() + "]"
}

// String is a one-line summary.
func (d Decision) String() string {
	if d.Allowed {
		if d.MatchedPolicy != "" {
			return "allowed by " + d.MatchedPolicy
		}
		return "allowed"
	}
	return fmt.Sprintf("denied (%s, %s filter #%d): %s", d.Action, d.Layer, d.FilterIndex, d.ResponseCodeDetails())
}

// RBACFilter is one RBAC filter of a filter chain, HTTP or network, in a common form.
type RBACFilter struct {
	// Name is the filter's name in the chain (envoy.filters.http.rbac, envoy.filters.network.rbac).
	Name  string
	Layer Layer
	// Rules are the enforced rules. nil means the filter enforces nothing (only shadow rules).
	Rules *rbacconfigv3.RBAC
	// ShadowRules are evaluated for stats and dynamic metadata only.
	ShadowRules *rbacconfigv3.RBAC
	// HasMatcher and HasShadowMatcher say the filter uses the xDS matcher tree (`matcher`,
	// `shadow_matcher`) instead of rules. The model does not implement it: a filter with
	// HasMatcher makes Evaluate fail; HasShadowMatcher is reported in the shadow result.
	HasMatcher       bool
	HasShadowMatcher bool
}

// UnsupportedError reports configuration the model does not implement. Evaluate and Validate
// return it (possibly wrapped) instead of guessing.
type UnsupportedError struct {
	// What names the construct, e.g. "permission.uri_template".
	What string
	// Where locates it, e.g. "filter #0 policy ns[x]-policy[y]-rule[0]".
	Where string
}

func (e *UnsupportedError) Error() string {
	if e.Where == "" {
		return "rbac model: unsupported " + e.What
	}
	return "rbac model: unsupported " + e.What + " in " + e.Where
}

func unsupported(what string) error { return &UnsupportedError{What: what} }
