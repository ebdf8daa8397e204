package rbac

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// evalCtx evaluates matchers for one request at one layer. A network filter runs before the
// HttpConnectionManager: it sees the connection only, and Envoy hands its matchers an empty header
// map.
type evalCtx struct {
	req   *Request
	layer Layer
	// headers has the lower-cased keys of Request.Headers.
	headers map[string]string
}

func newCtx(req *Request, layer Layer) *evalCtx {
	h := make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		h[strings.ToLower(k)] = v
	}
	return &evalCtx{req: req, layer: layer, headers: h}
}

// header returns a request header as Envoy's header map would: pseudo-headers from the Request
// fields unless overridden in Headers. Network-layer matchers see no headers at all.
func (c *evalCtx) header(name string) (string, bool, error) {
	if c.layer != LayerHTTP || !c.req.HTTP {
		return "", false, nil
	}
	n := strings.ToLower(name)
	if v, ok := c.headers[n]; ok {
		return v, true, nil
	}
	switch n {
	case ":authority":
		return c.req.Host, c.req.Host != "", nil
	case ":method":
		return c.req.Method, c.req.Method != "", nil
	case ":path":
		return c.req.Path, c.req.Path != "", nil
	}
	if strings.HasPrefix(n, ":") {
		// :scheme, :protocol, ... always exist in Envoy but the Request does not carry them.
		return "", false, unsupported("pseudo-header " + n + " (not set in Request.Headers)")
	}
	if c.req.UnknownHeader != nil && c.req.UnknownHeader(n) {
		return "", false, unsupported("header " + n + " (set by Envoy; its value is not known)")
	}
	return "", false, nil
}

// ---- permissions and principals ----

func (c *evalCtx) permission(p *rbacconfigv3.Permission) (bool, error) {
	if p == nil {
		return false, errors.New("rbac model: nil permission")
	}
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_AndRules:
		for _, sub := range r.AndRules.GetRules() {
			ok, err := c.permission(sub)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacconfigv3.Permission_OrRules:
		for _, sub := range r.OrRules.GetRules() {
			ok, err := c.permission(sub)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *rbacconfigv3.Permission_NotRule:
		ok, err := c.permission(r.NotRule)
		return !ok && err == nil, err
	case *rbacconfigv3.Permission_Any:
		if !r.Any {
			return false, errors.New("rbac model: invalid permission any: false")
		}
		return true, nil
	case *rbacconfigv3.Permission_Header:
		return c.matchHeader(r.Header)
	case *rbacconfigv3.Permission_UrlPath:
		return c.matchURLPath(r.UrlPath)
	case *rbacconfigv3.Permission_DestinationIp:
		if c.req.DestinationIP == "" {
			return false, errors.New("rbac model: destination_ip matcher needs Request.DestinationIP")
		}
		return matchCIDR(r.DestinationIp, c.req.DestinationIP)
	case *rbacconfigv3.Permission_DestinationPort:
		if c.req.DestinationPort == 0 {
			return false, errors.New("rbac model: destination_port matcher needs Request.DestinationPort")
		}
		return c.req.DestinationPort == r.DestinationPort, nil
	case *rbacconfigv3.Permission_DestinationPortRange:
		if c.req.DestinationPort == 0 {
			return false, errors.New("rbac model: destination_port_range matcher needs Request.DestinationPort")
		}
		port := int64(c.req.DestinationPort)
		rg := r.DestinationPortRange
		return int64(rg.GetStart()) <= port && port < int64(rg.GetEnd()), nil
	case *rbacconfigv3.Permission_RequestedServerName:
		return matchString(r.RequestedServerName, c.req.RequestedServerName)
	case *rbacconfigv3.Permission_Metadata:
		return matchMetadata(r.Metadata, c.req.DynamicMetadata)
	case *rbacconfigv3.Permission_SourcedMetadata:
		if r.SourcedMetadata.GetMetadataSource() != rbacconfigv3.MetadataSource_DYNAMIC {
			return false, unsupported("permission.sourced_metadata with source " + r.SourcedMetadata.GetMetadataSource().String())
		}
		return matchMetadata(r.SourcedMetadata.GetMetadataMatcher(), c.req.DynamicMetadata)
	case *rbacconfigv3.Permission_Matcher:
		return false, unsupported("permission.matcher extension " + extName(r.Matcher))
	case *rbacconfigv3.Permission_UriTemplate:
		return false, unsupported("permission.uri_template " + extName(r.UriTemplate))
	case nil:
		return false, errors.New("rbac model: permission with no rule set")
	default:
		return false, unsupported(fmt.Sprintf("permission rule %T", r))
	}
}

func (c *evalCtx) principal(p *rbacconfigv3.Principal) (bool, error) {
	if p == nil {
		return false, errors.New("rbac model: nil principal")
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_AndIds:
		for _, sub := range id.AndIds.GetIds() {
			ok, err := c.principal(sub)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacconfigv3.Principal_OrIds:
		for _, sub := range id.OrIds.GetIds() {
			ok, err := c.principal(sub)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *rbacconfigv3.Principal_NotId:
		ok, err := c.principal(id.NotId)
		return !ok && err == nil, err
	case *rbacconfigv3.Principal_Any:
		if !id.Any {
			return false, errors.New("rbac model: invalid principal any: false")
		}
		return true, nil
	case *rbacconfigv3.Principal_Authenticated_:
		return c.authenticated(id.Authenticated)
	case *rbacconfigv3.Principal_SourceIp:
		return c.matchPeerIP(id.SourceIp, c.req.SourceIP, "source_ip")
	case *rbacconfigv3.Principal_DirectRemoteIp:
		return c.matchPeerIP(id.DirectRemoteIp, c.req.SourceIP, "direct_remote_ip")
	case *rbacconfigv3.Principal_RemoteIp:
		ip := c.req.RemoteIP
		if ip == "" {
			ip = c.req.SourceIP
		}
		return c.matchPeerIP(id.RemoteIp, ip, "remote_ip")
	case *rbacconfigv3.Principal_Header:
		return c.matchHeader(id.Header)
	case *rbacconfigv3.Principal_UrlPath:
		return c.matchURLPath(id.UrlPath)
	case *rbacconfigv3.Principal_Metadata:
		return matchMetadata(id.Metadata, c.req.DynamicMetadata)
	case *rbacconfigv3.Principal_SourcedMetadata:
		if id.SourcedMetadata.GetMetadataSource() != rbacconfigv3.MetadataSource_DYNAMIC {
			return false, unsupported("principal.sourced_metadata with source " + id.SourcedMetadata.GetMetadataSource().String())
		}
		return matchMetadata(id.SourcedMetadata.GetMetadataMatcher(), c.req.DynamicMetadata)
	case *rbacconfigv3.Principal_FilterState:
		return c.matchFilterState(id.FilterState)
	case *rbacconfigv3.Principal_Custom:
		return false, unsupported("principal.custom extension " + extName(id.Custom))
	case nil:
		return false, errors.New("rbac model: principal with no identifier set")
	default:
		return false, unsupported(fmt.Sprintf("principal identifier %T", id))
	}
}

// authenticated follows Envoy's AuthenticatedMatcher: false without TLS; with no principal_name,
// any TLS peer; otherwise the URI SAN, then (Istio certs have none) DNS SANs, then the subject.
func (c *evalCtx) authenticated(a *rbacconfigv3.Principal_Authenticated) (bool, error) {
	if c.req.Principal == "" && !c.req.DownstreamTLS {
		return false, nil
	}
	if a.GetPrincipalName() == nil {
		return true, nil
	}
	if c.req.Principal != "" {
		ok, err := matchString(a.GetPrincipalName(), c.req.Principal)
		if err != nil || ok {
			return ok, err
		}
	}
	return matchString(a.GetPrincipalName(), c.req.PeerSubject)
}

func (c *evalCtx) matchPeerIP(cidr *corev3.CidrRange, ip, what string) (bool, error) {
	if ip == "" {
		return false, fmt.Errorf("rbac model: %s matcher needs Request.SourceIP", what)
	}
	return matchCIDR(cidr, ip)
}

func (c *evalCtx) matchFilterState(m *matcherv3.FilterStateMatcher) (bool, error) {
	v, ok := c.req.FilterState[m.GetKey()]
	if !ok && m.GetKey() == IstioPeerPrincipalKey && c.req.Principal != "" {
		v, ok = c.req.Principal, true
	}
	switch fm := m.GetMatcher().(type) {
	case *matcherv3.FilterStateMatcher_StringMatch:
		if !ok {
			return false, nil
		}
		return matchString(fm.StringMatch, v)
	default:
		return false, unsupported(fmt.Sprintf("filter_state matcher %T", fm))
	}
}

// ---- headers and paths ----

// matchHeader is Envoy's HeaderUtility::matchHeaders for one HeaderMatcher.
func (c *evalCtx) matchHeader(h *routev3.HeaderMatcher) (bool, error) {
	return MatchHeader(h, c.header)
}

// MatchHeader is Envoy's HeaderUtility::matchHeaders for one matcher. lookup returns a header's
// value as Envoy's header map would, whether it is present, or an error for a header whose value
// the model cannot know. The RBAC filter's header matchers and the router's route matches both use
// it.
func MatchHeader(h *routev3.HeaderMatcher, lookup func(name string) (value string, present bool, err error)) (bool, error) {
	if h == nil {
		return false, errors.New("envoy model: nil header matcher")
	}
	value, present, err := lookup(h.GetName())
	if err != nil {
		return false, err
	}
	_, isPresentMatch := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch)
	wantPresent := true // an unset specifier is a presence match
	if isPresentMatch {
		wantPresent = h.GetPresentMatch()
	} else if h.GetHeaderMatchSpecifier() == nil {
		isPresentMatch = true
	}
	if !present && !h.GetTreatMissingHeaderAsEmpty() {
		if h.GetInvertMatch() {
			return isPresentMatch && wantPresent, nil
		}
		return isPresentMatch && !wantPresent, nil
	}
	var match bool
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		match = s.ExactMatch == "" || value == s.ExactMatch
	case *routev3.HeaderMatcher_SafeRegexMatch:
		match, err = matchRegex(s.SafeRegexMatch, value)
	case *routev3.HeaderMatcher_RangeMatch:
		n, perr := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		match = perr == nil && n >= s.RangeMatch.GetStart() && n < s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_PresentMatch:
		match = s.PresentMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		match = strings.HasPrefix(value, s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		match = strings.HasSuffix(value, s.SuffixMatch)
	case *routev3.HeaderMatcher_ContainsMatch:
		match = strings.Contains(value, s.ContainsMatch)
	case *routev3.HeaderMatcher_StringMatch:
		match, err = matchString(s.StringMatch, value)
	case nil:
		match = true
	default:
		return false, unsupported(fmt.Sprintf("header match specifier %T", s))
	}
	if err != nil {
		return false, err
	}
	return match != h.GetInvertMatch(), nil
}

// matchURLPath matches :path without query and fragment; false when there is no :path.
func (c *evalCtx) matchURLPath(p *matcherv3.PathMatcher) (bool, error) {
	path, ok, err := c.header(":path")
	if err != nil || !ok {
		return false, err
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	switch r := p.GetRule().(type) {
	case *matcherv3.PathMatcher_Path:
		return matchString(r.Path, path)
	default:
		return false, unsupported(fmt.Sprintf("path matcher rule %T", r))
	}
}

// ---- strings, regexes, addresses ----

// matchString is Envoy's StringMatcherImpl. ignore_case lowers ASCII only and does not apply to
// safe_regex.
func matchString(m *matcherv3.StringMatcher, v string) (bool, error) {
	if m == nil {
		return false, errors.New("rbac model: nil string matcher")
	}
	ic := m.GetIgnoreCase()
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		if ic {
			return asciiLower(v) == asciiLower(p.Exact), nil
		}
		return v == p.Exact, nil
	case *matcherv3.StringMatcher_Prefix:
		if ic {
			return strings.HasPrefix(asciiLower(v), asciiLower(p.Prefix)), nil
		}
		return strings.HasPrefix(v, p.Prefix), nil
	case *matcherv3.StringMatcher_Suffix:
		if ic {
			return strings.HasSuffix(asciiLower(v), asciiLower(p.Suffix)), nil
		}
		return strings.HasSuffix(v, p.Suffix), nil
	case *matcherv3.StringMatcher_Contains:
		if ic {
			return strings.Contains(asciiLower(v), asciiLower(p.Contains)), nil
		}
		return strings.Contains(v, p.Contains), nil
	case *matcherv3.StringMatcher_SafeRegex:
		return matchRegex(p.SafeRegex, v)
	case *matcherv3.StringMatcher_Custom:
		return false, unsupported("string matcher custom extension " + p.Custom.GetName())
	case nil:
		return false, errors.New("rbac model: string matcher with no pattern")
	default:
		return false, unsupported(fmt.Sprintf("string matcher %T", p))
	}
}

var regexCache sync.Map // string -> *regexp.Regexp or error

func compileRegex(re string) (*regexp.Regexp, error) {
	if v, ok := regexCache.Load(re); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*regexp.Regexp), nil
	}
	// Envoy's RE2 safe_regex must match the whole value. Go's regexp implements RE2 syntax.
	compiled, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		err = fmt.Errorf("rbac model: regex %q: %w", re, err)
		regexCache.Store(re, err)
		return nil, err
	}
	regexCache.Store(re, compiled)
	return compiled, nil
}

func matchRegex(m *matcherv3.RegexMatcher, v string) (bool, error) {
	if m == nil {
		return false, errors.New("rbac model: nil regex matcher")
	}
	re, err := compileRegex(m.GetRegex())
	if err != nil {
		return false, err
	}
	return re.MatchString(v), nil
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func parseCIDR(cidr *corev3.CidrRange) (netip.Prefix, error) {
	if cidr == nil {
		return netip.Prefix{}, errors.New("rbac model: nil CIDR range")
	}
	addr, err := netip.ParseAddr(cidr.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("rbac model: CIDR address %q: %w", cidr.GetAddressPrefix(), err)
	}
	bits := int(cidr.GetPrefixLen().GetValue())
	if bits > addr.BitLen() { // Envoy clamps the length to the address size
		bits = addr.BitLen()
	}
	return addr.Prefix(bits)
}

// matchCIDR is Envoy's CidrRange::isInRange: the IP versions must agree.
func matchCIDR(cidr *corev3.CidrRange, ip string) (bool, error) {
	pfx, err := parseCIDR(cidr)
	if err != nil {
		return false, err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, fmt.Errorf("rbac model: request address %q: %w", ip, err)
	}
	if addr.Is4() != pfx.Addr().Is4() {
		return false, nil
	}
	return pfx.Contains(addr), nil
}

// ---- metadata ----

// matchMetadata is Envoy's Matchers::MetadataMatcher over dynamic metadata: the value at
// filter/path (absent = no kind), matched by the ValueMatcher, xor invert.
func matchMetadata(m *matcherv3.MetadataMatcher, md map[string]*structpb.Struct) (bool, error) {
	if m == nil || m.GetValue() == nil {
		return false, errors.New("rbac model: metadata matcher without value matcher")
	}
	if len(m.GetPath()) == 0 {
		return false, errors.New("rbac model: metadata matcher without path")
	}
	var cur *structpb.Value
	if st := md[m.GetFilter()]; st != nil {
		cur = structpb.NewStructValue(st)
		for _, seg := range m.GetPath() {
			key, ok := seg.GetSegment().(*matcherv3.MetadataMatcher_PathSegment_Key)
			if !ok {
				return false, unsupported(fmt.Sprintf("metadata path segment %T", seg.GetSegment()))
			}
			s := cur.GetStructValue()
			if s == nil {
				cur = nil
				break
			}
			next, ok := s.GetFields()[key.Key]
			if !ok {
				cur = nil
				break
			}
			cur = next
		}
	}
	ok, err := matchValue(m.GetValue(), cur)
	if err != nil {
		return false, err
	}
	return ok != m.GetInvert(), nil
}

// matchValue is Envoy's ValueMatcher; v == nil (or a Value with no kind) is "not set".
func matchValue(vm *matcherv3.ValueMatcher, v *structpb.Value) (bool, error) {
	if vm == nil {
		return false, errors.New("rbac model: nil value matcher")
	}
	if v != nil && v.GetKind() == nil {
		v = nil
	}
	switch p := vm.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		_, isNull := v.GetKind().(*structpb.Value_NullValue)
		return v != nil && isNull, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		n, isNum := v.GetKind().(*structpb.Value_NumberValue)
		if v == nil || !isNum {
			return false, nil
		}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Range:
			return d.Range.GetStart() <= n.NumberValue && n.NumberValue < d.Range.GetEnd(), nil
		case *matcherv3.DoubleMatcher_Exact:
			return n.NumberValue == d.Exact, nil
		default:
			return false, unsupported(fmt.Sprintf("double matcher %T", d))
		}
	case *matcherv3.ValueMatcher_StringMatch:
		s, isStr := v.GetKind().(*structpb.Value_StringValue)
		if v == nil || !isStr {
			return false, nil
		}
		return matchString(p.StringMatch, s.StringValue)
	case *matcherv3.ValueMatcher_BoolMatch:
		b, isBool := v.GetKind().(*structpb.Value_BoolValue)
		return v != nil && isBool && b.BoolValue == p.BoolMatch, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return p.PresentMatch && v != nil, nil
	case *matcherv3.ValueMatcher_ListMatch:
		one, ok := p.ListMatch.GetMatchPattern().(*matcherv3.ListMatcher_OneOf)
		if !ok {
			return false, unsupported(fmt.Sprintf("list matcher %T", p.ListMatch.GetMatchPattern()))
		}
		l := v.GetListValue()
		if v == nil || l == nil {
			return false, nil
		}
		for _, e := range l.GetValues() {
			ok, err := matchValue(one.OneOf, e)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *matcherv3.ValueMatcher_OrMatch:
		for _, sub := range p.OrMatch.GetValueMatchers() {
			ok, err := matchValue(sub, v)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case nil:
		return false, errors.New("rbac model: value matcher with no pattern")
	default:
		return false, unsupported(fmt.Sprintf("value matcher %T", p))
	}
}

func extName(e *corev3.TypedExtensionConfig) string {
	if e == nil {
		return "<nil>"
	}
	return e.GetName() + " (" + e.GetTypedConfig().GetTypeUrl() + ")"
}
