package rbac

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ---- builders ----

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func exactIC(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}, IgnoreCase: true}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func cidr(addr string, l uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: addr, PrefixLen: wrapperspb.UInt32(l)}
}

func permAny() *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Any{Any: true}}
}

func principalAny() *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Any{Any: true}}
}

func permHeader(h *routev3.HeaderMatcher) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: h}}
}

func headerString(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

func permAnd(ps ...*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

func permOr(ps ...*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

func permNot(p *rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_NotRule{NotRule: p}}
}

func principalAuth(m *matcherv3.StringMatcher) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{
		Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: m}}}
}

func principalAnd(ps ...*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: ps}}}
}

func principalOr(ps ...*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ps}}}
}

func principalNot(p *rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: p}}
}

func policy(perm *rbacconfigv3.Permission, pr *rbacconfigv3.Principal) *rbacconfigv3.Policy {
	return &rbacconfigv3.Policy{Permissions: []*rbacconfigv3.Permission{perm}, Principals: []*rbacconfigv3.Principal{pr}}
}

func rules(action rbacconfigv3.RBAC_Action, policies map[string]*rbacconfigv3.Policy) *rbacconfigv3.RBAC {
	if policies == nil {
		policies = map[string]*rbacconfigv3.Policy{}
	}
	return &rbacconfigv3.RBAC{Action: action, Policies: policies}
}

func httpFilter(r *rbacconfigv3.RBAC) *RBACFilter {
	return FromHTTP(&rbachttpv3.RBAC{Rules: r})
}

func netFilter(r *rbacconfigv3.RBAC) *RBACFilter {
	return FromNetwork(&rbacnetv3.RBAC{Rules: r, StatPrefix: "tcp."})
}

func httpReq() Request {
	return Request{
		HTTP: true, Method: "GET", Host: "developers.google.com", Path: "/search?q=1#frag",
		Principal: "spiffe://cluster.local/ns/default/sa/sleep", SourceIP: "10.0.0.5",
		DestinationIP: "10.0.0.9", DestinationPort: 8080, RequestedServerName: "developers.google.com",
		Headers: map[string]string{"User-Agent": "curl/8.0", "X-Num": "42"},
	}
}

// evalPerm evaluates one permission against req at the HTTP layer.
func evalPerm(t *testing.T, p *rbacconfigv3.Permission, req Request) (bool, error) {
	t.Helper()
	return newCtx(&req, LayerHTTP).permission(p)
}

func evalPrincipal(t *testing.T, p *rbacconfigv3.Principal, req Request) (bool, error) {
	t.Helper()
	return newCtx(&req, LayerHTTP).principal(p)
}

// ---- string matchers ----

func TestStringMatcher(t *testing.T) {
	cases := []struct {
		name string
		m    *matcherv3.StringMatcher
		v    string
		want bool
	}{
		{"exact", exact("abc"), "abc", true},
		{"exact case", exact("abc"), "ABC", false},
		{"exact ignore case", exactIC("abc"), "ABC", true},
		{"prefix", prefix("spiffe://"), "spiffe://x", true},
		{"prefix no", prefix("spiffe://"), "http://x", false},
		{"prefix ignore case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "Dev"}, IgnoreCase: true}, "developers", true},
		{"suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".com"}}, "a.com", true},
		{"suffix ignore case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".COM"}, IgnoreCase: true}, "a.com", true},
		{"contains", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "/ns/"}}, "x/ns/y", true},
		{"contains no", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "/ns/"}}, "x/sa/y", false},
		{"regex full match", regex(".*/ns/default/.*"), "spiffe://cluster.local/ns/default/sa/sleep", true},
		{"regex anchored", regex("ns/default"), "spiffe://cluster.local/ns/default/sa/sleep", false},
		{"regex alternation anchored", regex("a|b"), "ab", false},
		{"regex .+ empty", regex(".+"), "", false},
		{"istio service account regex", regex(`spiffe://.+/ns/otherns/(.+/|)sa/sleep(/.+)?`), "spiffe://cluster.local/ns/otherns/sa/sleep", true},
		{"istio service account regex no suffix junk", regex(`spiffe://.+/ns/otherns/(.+/|)sa/sleep(/.+)?`), "spiffe://cluster.local/ns/otherns/sa/sleep-yahoo", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := matchString(tc.m, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("matchString(%v, %q) = %v, want %v", tc.m, tc.v, got, tc.want)
			}
		})
	}
	if _, err := matchString(regex("("), "x"); err == nil {
		t.Error("invalid regex: want error")
	}
	if _, err := matchString(&matcherv3.StringMatcher{}, "x"); err == nil {
		t.Error("empty string matcher: want error")
	}
}

// ---- headers, host, method, path ----

func TestHeaderMatcher(t *testing.T) {
	present := func(name string, p bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: p}}
	}
	cases := []struct {
		name string
		h    *routev3.HeaderMatcher
		want bool
	}{
		{"authority exact ignore case (Istio hosts)", headerString(":authority", exactIC("Developers.Google.com")), true},
		{"authority other host", headerString(":authority", exactIC("developer.yahoo.com")), false},
		{"authority suffix (Istio *.google.com)", headerString(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".google.com"}, IgnoreCase: true}), true},
		{"method exact (Istio methods)", headerString(":method", exact("GET")), true},
		{"method POST", headerString(":method", exact("POST")), false},
		{"path pseudo-header includes query", headerString(":path", exact("/search?q=1#frag")), true},
		{"regular header case-insensitive name", headerString("user-agent", prefix("curl/")), true},
		{"present", present("x-num", true), true},
		{"present missing", present("x-missing", true), false},
		{"present false on missing header", present("x-missing", false), true},
		{"present false on present header", present("x-num", false), false},
		{"unset specifier is presence", &routev3.HeaderMatcher{Name: "x-num"}, true},
		{"unset specifier missing", &routev3.HeaderMatcher{Name: "x-missing"}, false},
		{"invert on present header", &routev3.HeaderMatcher{Name: "x-num", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("42")}}, false},
		{"invert on missing header is false (not present match)", &routev3.HeaderMatcher{Name: "x-missing", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("42")}}, false},
		{"invert present on missing header", &routev3.HeaderMatcher{Name: "x-missing", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, true},
		{"treat missing as empty", &routev3.HeaderMatcher{Name: "x-missing", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("")}}, true},
		{"range in", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 40, End: 43}}}, true},
		{"range end exclusive", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 40, End: 42}}}, false},
		{"deprecated exact empty matches any", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: ""}}, true},
		{"deprecated prefix", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "4"}}, true},
		{"deprecated suffix", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "3"}}, false},
		{"deprecated contains", &routev3.HeaderMatcher{Name: "user-agent", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "/8"}}, true},
		{"safe regex", &routev3.HeaderMatcher{Name: "x-num", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]+"}}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := evalPerm(t, permHeader(tc.h), httpReq())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("unknown pseudo-header is an error", func(t *testing.T) {
		if _, err := evalPerm(t, permHeader(headerString(":scheme", exact("http"))), httpReq()); err == nil {
			t.Fatal("want error")
		}
		req := httpReq()
		req.Headers[":scheme"] = "http"
		if ok, err := evalPerm(t, permHeader(headerString(":scheme", exact("http"))), req); err != nil || !ok {
			t.Fatalf("with :scheme given: got %v, %v", ok, err)
		}
	})
	t.Run("network layer sees no headers", func(t *testing.T) {
		req := httpReq()
		ok, err := newCtx(&req, LayerNetwork).permission(permHeader(headerString(":authority", exactIC("developers.google.com"))))
		if err != nil || ok {
			t.Fatalf("got %v, %v; want false", ok, err)
		}
	})
}

func TestURLPath(t *testing.T) {
	p := func(m *matcherv3.StringMatcher) *rbacconfigv3.Permission {
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
	}
	for _, tc := range []struct {
		m    *matcherv3.StringMatcher
		want bool
	}{
		{exact("/search"), true},
		{prefix("/sea"), true},
		{exact("/search?q=1"), false},
	} {
		got, err := evalPerm(t, p(tc.m), httpReq())
		if err != nil || got != tc.want {
			t.Errorf("url_path %v: got %v, %v; want %v", tc.m, got, err, tc.want)
		}
	}
	req := httpReq()
	req.Path = ""
	if got, err := evalPerm(t, p(prefix("/")), req); err != nil || got {
		t.Errorf("no :path: got %v, %v; want false", got, err)
	}
}

// ---- connection attributes ----

func TestConnectionMatchers(t *testing.T) {
	req := httpReq()
	cases := []struct {
		name string
		p    *rbacconfigv3.Permission
		want bool
	}{
		{"destination_ip in", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationIp{DestinationIp: cidr("10.0.0.0", 24)}}, true},
		{"destination_ip out", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationIp{DestinationIp: cidr("10.0.1.0", 24)}}, false},
		{"destination_ip /32", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationIp{DestinationIp: cidr("10.0.0.9", 32)}}, true},
		{"destination_ip v6 range vs v4 address", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationIp{DestinationIp: cidr("::", 0)}}, false},
		{"destination_port", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 8080}}, true},
		{"destination_port other", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 80}}, false},
		{"destination_port_range", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: 8000, End: 8081}}}, true},
		{"destination_port_range end exclusive", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: 8000, End: 8080}}}, false},
		{"requested_server_name (connection.sni)", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_RequestedServerName{RequestedServerName: exact("developers.google.com")}}, true},
		{"requested_server_name other", &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_RequestedServerName{RequestedServerName: exact("developer.yahoo.com")}}, false},
		{"and", permAnd(permAny(), &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 8080}}), true},
		{"and one false", permAnd(permAny(), &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 80}}), false},
		{"empty and is true", permAnd(), true},
		{"or", permOr(&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 80}}, permAny()), true},
		{"empty or is false", permOr(), false},
		{"not", permNot(permAny()), false},
		{"not not", permNot(permNot(permAny())), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := evalPerm(t, tc.p, req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("missing destination is an error", func(t *testing.T) {
		r := req
		r.DestinationIP, r.DestinationPort = "", 0
		if _, err := evalPerm(t, cases[0].p, r); err == nil {
			t.Error("destination_ip without DestinationIP: want error")
		}
		if _, err := evalPerm(t, cases[4].p, r); err == nil {
			t.Error("destination_port without DestinationPort: want error")
		}
	})
}

func TestPrincipalMatchers(t *testing.T) {
	req := httpReq()
	req.RemoteIP = "192.168.1.1"
	direct := func(c *corev3.CidrRange) *rbacconfigv3.Principal {
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}
	}
	remote := func(c *corev3.CidrRange) *rbacconfigv3.Principal {
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_RemoteIp{RemoteIp: c}}
	}
	cases := []struct {
		name string
		p    *rbacconfigv3.Principal
		want bool
	}{
		{"namespace regex (Istio source.namespaces)", principalAuth(regex(".*/ns/default/.*")), true},
		{"namespace regex other ns", principalAuth(regex(".*/ns/otherns/.*")), false},
		{"principal exact (Istio source.principals)", principalAuth(exact("spiffe://cluster.local/ns/default/sa/sleep")), true},
		{"principal exact other", principalAuth(exact("spiffe://cluster.local/ns/otherns/sa/sleep-yahoo")), false},
		{"any authenticated", &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{}}}, true},
		{"direct_remote_ip", direct(cidr("10.0.0.0", 8)), true},
		{"direct_remote_ip ignores RemoteIP", direct(cidr("192.168.0.0", 16)), false},
		{"remote_ip uses RemoteIP", remote(cidr("192.168.0.0", 16)), true},
		{"source_ip is the connection peer", &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_SourceIp{SourceIp: cidr("10.0.0.5", 32)}}, true},
		{"header principal", &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Header{Header: headerString("user-agent", prefix("curl"))}}, true},
		{"and", principalAnd(principalAny(), principalAuth(prefix("spiffe://"))), true},
		{"or", principalOr(principalAuth(exact("x")), principalAuth(prefix("spiffe://cluster.local/"))), true},
		{"not", principalNot(principalAuth(regex(".*/ns/default/.*"))), false},
		{"filter_state peer principal falls back to Principal", &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: IstioPeerPrincipalKey, Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: regex(".*/ns/default/.*")}}}}, true},
		{"filter_state other key missing", &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: "other", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: regex(".*")}}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := evalPrincipal(t, tc.p, req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("no mTLS: authenticated never matches, not(authenticated) does", func(t *testing.T) {
		r := req
		r.Principal = ""
		for _, p := range []*rbacconfigv3.Principal{
			principalAuth(regex(".*")),
			{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{}}},
		} {
			if got, err := evalPrincipal(t, p, r); err != nil || got {
				t.Errorf("%v: got %v, %v; want false", p, got, err)
			}
		}
		if got, _ := evalPrincipal(t, principalNot(principalAuth(regex(".*/ns/default/.*"))), r); !got {
			t.Error("not(namespace) without mTLS: want true")
		}
	})
	t.Run("TLS without client certificate matches the (empty) subject", func(t *testing.T) {
		r := req
		r.Principal, r.DownstreamTLS = "", true
		if got, _ := evalPrincipal(t, principalAuth(regex(".*")), r); !got {
			t.Error("regex .* on TLS peer without cert: want true (subject \"\")")
		}
		if got, _ := evalPrincipal(t, principalAuth(regex(".+")), r); got {
			t.Error("regex .+ on TLS peer without cert: want false")
		}
		r.PeerSubject = "CN=client"
		if got, _ := evalPrincipal(t, principalAuth(exact("CN=client")), r); !got {
			t.Error("subject fallback: want true")
		}
	})
	t.Run("missing source IP is an error", func(t *testing.T) {
		r := req
		r.SourceIP, r.RemoteIP = "", ""
		if _, err := evalPrincipal(t, direct(cidr("10.0.0.0", 8)), r); err == nil {
			t.Error("want error")
		}
	})
}

func TestMetadataMatcher(t *testing.T) {
	// The shape Istio uses for request.auth.claims[groups]: filter istio_authn, path
	// request.auth.claims / groups, list one_of.
	md := map[string]*structpb.Struct{}
	st, err := structpb.NewStruct(map[string]any{
		"request.auth.claims": map[string]any{"groups": []any{"dev", "ops"}, "iss": "https://issuer", "n": 3.0, "admin": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	md["istio_authn"] = st
	req := httpReq()
	req.DynamicMetadata = md
	mm := func(path []string, v *matcherv3.ValueMatcher, invert bool) *rbacconfigv3.Principal {
		segs := make([]*matcherv3.MetadataMatcher_PathSegment, 0, len(path))
		for _, k := range path {
			segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
		}
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
			Filter: "istio_authn", Path: segs, Value: v, Invert: invert}}}
	}
	strV := func(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
	}
	listOneOf := func(v *matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
			MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v}}}}
	}
	claims := []string{"request.auth.claims"}
	cases := []struct {
		name string
		p    *rbacconfigv3.Principal
		want bool
	}{
		{"list one_of", mm(append(claims, "groups"), listOneOf(strV(exact("ops"))), false), true},
		{"list one_of none", mm(append(claims, "groups"), listOneOf(strV(exact("qa"))), false), false},
		{"string", mm(append(claims, "iss"), strV(exact("https://issuer")), false), true},
		{"string on list is false", mm(append(claims, "groups"), strV(exact("dev")), false), false},
		{"missing path", mm(append(claims, "nope"), strV(exact("x")), false), false},
		{"missing path inverted", mm(append(claims, "nope"), strV(exact("x")), true), true},
		{"present", mm(append(claims, "iss"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}, false), true},
		{"present missing", mm(append(claims, "nope"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}, false), false},
		{"bool", mm(append(claims, "admin"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_BoolMatch{BoolMatch: true}}, false), true},
		{"double exact", mm(append(claims, "n"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_DoubleMatch{DoubleMatch: &matcherv3.DoubleMatcher{
			MatchPattern: &matcherv3.DoubleMatcher_Exact{Exact: 3}}}}, false), true},
		{"or", mm(append(claims, "iss"), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
			ValueMatchers: []*matcherv3.ValueMatcher{strV(exact("a")), strV(prefix("https://"))}}}}, false), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := evalPrincipal(t, tc.p, req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("no metadata for the filter", func(t *testing.T) {
		r := httpReq()
		if got, err := evalPrincipal(t, cases[0].p, r); err != nil || got {
			t.Errorf("got %v, %v; want false", got, err)
		}
	})
}

// ---- unsupported constructs ----

func TestUnsupportedMatchersError(t *testing.T) {
	req := httpReq()
	uriTemplate := &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{Name: "uri-template"}}}
	custom := &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Custom{Custom: &corev3.TypedExtensionConfig{Name: "mtls"}}}
	for name, f := range map[string]*RBACFilter{
		"uri_template in DENY":      httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": policy(uriTemplate, principalAny())})),
		"custom principal in ALLOW": httpFilter(rules(rbacconfigv3.RBAC_ALLOW, map[string]*rbacconfigv3.Policy{"p": policy(permAny(), custom)})),
		"permission.matcher": httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": policy(
			&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Matcher{Matcher: &corev3.TypedExtensionConfig{Name: "x"}}}, principalAny())})),
		"condition": httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": {
			Permissions: []*rbacconfigv3.Permission{permAny()}, Principals: []*rbacconfigv3.Principal{principalAny()},
			Condition: &exprpb.Expr{Id: 1},
		}})),
		"matcher tree":     {Name: HTTPFilterName, Layer: LayerHTTP, HasMatcher: true},
		"empty permission": httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": policy(&rbacconfigv3.Permission{}, principalAny())})),
	} {
		t.Run(name, func(t *testing.T) {
			d, err := Evaluate([]*RBACFilter{f}, req)
			if err == nil {
				t.Fatalf("want error, got decision %v", d)
			}
			if d.Allowed {
				t.Errorf("decision on error must be the zero Decision, got %+v", d)
			}
			if Validate([]*RBACFilter{f}) == nil {
				t.Error("Validate: want error")
			}
		})
	}
	t.Run("unsupported error type and location", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"ns[a]-policy[b]-rule[0]": policy(uriTemplate, principalAny())}))
		_, err := Evaluate([]*RBACFilter{f}, req)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(ue.Where, "ns[a]-policy[b]-rule[0]") || !strings.Contains(ue.What, "uri_template") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("short-circuit like Envoy: unreachable unsupported matcher does not matter", func(t *testing.T) {
		// and(false, unsupported) is false whatever the unsupported part says.
		p := permAnd(&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 1}}, uriTemplate)
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": policy(p, principalAny())}))
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed {
			t.Fatalf("got %v, %v", d, err)
		}
		if Validate([]*RBACFilter{f}) == nil {
			t.Error("Validate is strict: want error")
		}
	})
	t.Run("HTTP filter on a non-HTTP request", func(t *testing.T) {
		r := req
		r.HTTP = false
		if _, err := Evaluate([]*RBACFilter{httpFilter(rules(rbacconfigv3.RBAC_DENY, nil))}, r); err == nil {
			t.Fatal("want error")
		}
	})
}

// ---- filter-chain semantics ----

func TestEvaluateSemantics(t *testing.T) {
	req := httpReq()
	nsDefault := principalAuth(regex(".*/ns/default/.*"))
	nsOther := principalAuth(regex(".*/ns/otherns/.*"))
	hostGoogle := permHeader(headerString(":authority", exactIC("developers.google.com")))
	never := policy(permNot(permAny()), principalNot(principalAny()))

	t.Run("no filters allows", func(t *testing.T) {
		d, err := Evaluate(nil, req)
		if err != nil || !d.Allowed || d.FilterIndex != -1 {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("DENY match denies with the policy name", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{
			"ns[istio-system]-policy[deny-default]-rule[0]": policy(hostGoogle, nsDefault),
		}))
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed || d.Action != ActionDeny || d.MatchedPolicy != "ns[istio-system]-policy[deny-default]-rule[0]" || d.Layer != LayerHTTP {
			t.Fatalf("got %+v", d)
		}
		if got := d.ResponseCodeDetails(); got != "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-default]-rule[0]]" {
			t.Errorf("ResponseCodeDetails = %q", got)
		}
	})
	t.Run("DENY no match allows", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": policy(hostGoogle, nsOther)}))
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("ALLOW with no policies denies everything (none)", func(t *testing.T) {
		d, err := Evaluate([]*RBACFilter{httpFilter(rules(rbacconfigv3.RBAC_ALLOW, nil))}, req)
		if err != nil || d.Allowed || d.Action != ActionAllow || d.MatchedPolicy != "" || d.MatchedPolicyForLog() != "none" {
			t.Fatalf("got %+v, %v", d, err)
		}
		if d.ResponseCodeDetails() != "rbac_access_denied_matched_policy[none]" {
			t.Errorf("ResponseCodeDetails = %q", d.ResponseCodeDetails())
		}
	})
	t.Run("ALLOW with a never-matching policy (Istio allow-nothing) denies", func(t *testing.T) {
		d, err := Evaluate([]*RBACFilter{httpFilter(rules(rbacconfigv3.RBAC_ALLOW, map[string]*rbacconfigv3.Policy{"allow-nothing": never}))}, req)
		if err != nil || d.Allowed || d.MatchedPolicyForLog() != "none" {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("ALLOW match allows and reports the policy", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_ALLOW, map[string]*rbacconfigv3.Policy{"a": never, "b": policy(hostGoogle, nsDefault)}))
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed || d.Action != ActionAllow || d.MatchedPolicy != "b" || d.MatchedPolicyForLog() != "" {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("DENY before ALLOW: first denial wins", func(t *testing.T) {
		deny := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"deny": policy(hostGoogle, nsDefault)}))
		allow := httpFilter(rules(rbacconfigv3.RBAC_ALLOW, map[string]*rbacconfigv3.Policy{"allow": policy(permAny(), principalAny())}))
		d, err := Evaluate([]*RBACFilter{deny, allow}, req)
		if err != nil || d.Allowed || d.MatchedPolicy != "deny" || d.FilterIndex != 0 {
			t.Fatalf("got %+v, %v", d, err)
		}
		// An ALLOW filter that denies first hides the DENY filter's policy name.
		allowNothing := httpFilter(rules(rbacconfigv3.RBAC_ALLOW, nil))
		d, err = Evaluate([]*RBACFilter{allowNothing, deny}, req)
		if err != nil || d.Allowed || d.MatchedPolicy != "" || d.FilterIndex != 0 {
			t.Fatalf("order reversed: got %+v, %v", d, err)
		}
	})
	t.Run("several DENY policies match: the lexically first is reported", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{
			"ns[istio-system]-policy[zz]-rule[0]": policy(permAny(), principalAny()),
			"ns[istio-system]-policy[aa]-rule[1]": policy(permAny(), principalAny()),
			"ns[istio-system]-policy[aa]-rule[0]": policy(permAny(), nsOther),
		}))
		for i := 0; i < 20; i++ { // map order must not matter
			d, err := Evaluate([]*RBACFilter{f}, req)
			if err != nil || d.MatchedPolicy != "ns[istio-system]-policy[aa]-rule[1]" {
				t.Fatalf("got %+v, %v", d, err)
			}
		}
	})
	t.Run("network filter denies before HTTP filters", func(t *testing.T) {
		n := netFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"net": policy(
			&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_RequestedServerName{RequestedServerName: exact("developers.google.com")}}, nsDefault)}))
		h := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"http": policy(permAny(), principalAny())}))
		d, err := Evaluate([]*RBACFilter{n, h}, req)
		if err != nil || d.Allowed || d.Layer != LayerNetwork || d.MatchedPolicy != "net" {
			t.Fatalf("got %+v, %v", d, err)
		}
		// A TCP request can be evaluated against network filters only.
		tcp := req
		tcp.HTTP, tcp.Method, tcp.Host, tcp.Path = false, "", "", ""
		d, err = Evaluate([]*RBACFilter{n}, tcp)
		if err != nil || d.Allowed {
			t.Fatalf("tcp: got %+v, %v", d, err)
		}
	})
	t.Run("shadow rules never decide", func(t *testing.T) {
		f := FromHTTP(&rbachttpv3.RBAC{
			ShadowRules: rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"dry-run": policy(permAny(), principalAny())}),
		})
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed || len(d.Shadow) != 1 || d.Shadow[0].Allowed || d.Shadow[0].EffectivePolicy != "dry-run" {
			t.Fatalf("got %+v, %v", d, err)
		}
		// Unsupported matcher in shadow rules: reported, not fatal.
		f = FromHTTP(&rbachttpv3.RBAC{
			Rules: rules(rbacconfigv3.RBAC_DENY, nil),
			ShadowRules: rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"dry-run": policy(
				&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{}}}, principalAny())}),
		})
		d, err = Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed || len(d.Shadow) != 1 || d.Shadow[0].Err == nil {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("LOG never denies", func(t *testing.T) {
		f := httpFilter(rules(rbacconfigv3.RBAC_LOG, map[string]*rbacconfigv3.Policy{"audit": policy(permAny(), principalAny())}))
		d, err := Evaluate([]*RBACFilter{f}, req)
		if err != nil || !d.Allowed || len(d.Logged) != 1 || d.Logged[0] != "audit" {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
	t.Run("policy needs a matching permission AND principal", func(t *testing.T) {
		p := &rbacconfigv3.Policy{
			Permissions: []*rbacconfigv3.Permission{permHeader(headerString(":method", exact("POST"))), hostGoogle},
			Principals:  []*rbacconfigv3.Principal{nsOther, nsDefault},
		}
		f := httpFilter(rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"p": p}))
		d, _ := Evaluate([]*RBACFilter{f}, req)
		if d.Allowed {
			t.Fatal("permissions OR / principals OR: want denied")
		}
		p.Principals = []*rbacconfigv3.Principal{nsOther}
		d, _ = Evaluate([]*RBACFilter{f}, req)
		if !d.Allowed {
			t.Fatal("no principal matches: want allowed")
		}
	})
}

// ---- Extract on a hand-built listener ----

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestExtractHandBuilt(t *testing.T) {
	httpRBAC := &rbachttpv3.RBAC{Rules: rules(rbacconfigv3.RBAC_DENY, map[string]*rbacconfigv3.Policy{"h": policy(permAny(), principalAny())})}
	netRBAC := &rbacnetv3.RBAC{StatPrefix: "tcp.", Rules: rules(rbacconfigv3.RBAC_ALLOW, map[string]*rbacconfigv3.Policy{"n": policy(permAny(), principalAny())})}
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", HttpFilters: []*hcmv3.HttpFilter{
		{Name: "istio.metadata_exchange", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}},
		{Name: HTTPFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, httpRBAC)}},
		{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}},
	}}
	chain := &listenerv3.FilterChain{Name: "c", Filters: []*listenerv3.Filter{
		{Name: NetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, netRBAC)}},
		{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}},
	}}
	l := &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{chain}}

	h, n, err := Extract(l, chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || len(n) != 1 || !proto.Equal(h[0], httpRBAC) || !proto.Equal(n[0], netRBAC) {
		t.Fatalf("got http=%v network=%v", h, n)
	}
	fs, err := FiltersForChain(l, FilterChainByName(l, "c"))
	if err != nil || len(fs) != 2 || fs[0].Layer != LayerNetwork || fs[1].Layer != LayerHTTP {
		t.Fatalf("FiltersForChain: %v, %v", fs, err)
	}
	if FilterChainByName(l, "nope") != nil {
		t.Error("FilterChainByName(nope) != nil")
	}
	if _, _, err := Extract(l, nil); err == nil {
		t.Error("nil chain without default chain: want error")
	}
	l.DefaultFilterChain = chain
	if h, _, err := Extract(l, nil); err != nil || len(h) != 1 {
		t.Errorf("default chain: %v, %v", h, err)
	}

	t.Run("ext_authz is refused", func(t *testing.T) {
		extAuthz := &anypb.Any{TypeUrl: HTTPExtAuthzType}
		hcm2 := proto.Clone(hcm).(*hcmv3.HttpConnectionManager)
		hcm2.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.ext_authz", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: extAuthz}}}, hcm2.HttpFilters...)
		c := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm2)}}}}
		var ue *UnsupportedError
		if _, _, err := Extract(l, c); !errors.As(err, &ue) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("RBAC by ECDS is refused", func(t *testing.T) {
		c := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "r", ConfigType: &listenerv3.Filter_ConfigDiscovery{
			ConfigDiscovery: &corev3.ExtensionConfigSource{TypeUrls: []string{NetworkRBACTypeURL}}}}}}
		if _, _, err := Extract(l, c); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("disabled HTTP RBAC is refused", func(t *testing.T) {
		hcm3 := &hcmv3.HttpConnectionManager{HttpFilters: []*hcmv3.HttpFilter{{Name: HTTPFilterName, Disabled: true,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, httpRBAC)}}}}
		c := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm3)}}}}
		if _, _, err := Extract(l, c); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("RBAC name with a foreign type is refused", func(t *testing.T) {
		c := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: NetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}}}}
		if _, _, err := Extract(l, c); err == nil {
			t.Fatal("want error")
		}
	})
}
