package rbac

import (
	"errors"
	"fmt"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Validate walks every policy of every filter (rules and shadow rules) and reports each construct
// Evaluate would refuse, and each regex or CIDR that does not parse. Evaluate itself only fails when
// a decision depends on such a construct; Validate is the strict check ("is all of this config
// inside the model?"). It returns nil when everything is supported.
func Validate(filters []*RBACFilter) error {
	var errs []error
	for i, f := range filters {
		if f == nil {
			errs = append(errs, fmt.Errorf("rbac model: filter #%d is nil", i))
			continue
		}
		if f.HasMatcher {
			errs = append(errs, wrap(i, f, "", unsupported("RBAC matcher tree (`matcher` instead of `rules`)")))
		}
		if f.HasShadowMatcher {
			errs = append(errs, wrap(i, f, "", unsupported("RBAC shadow matcher tree")))
		}
		for _, rules := range []*rbacconfigv3.RBAC{f.Rules, f.ShadowRules} {
			if rules == nil {
				continue
			}
			switch rules.GetAction() {
			case rbacconfigv3.RBAC_ALLOW, rbacconfigv3.RBAC_DENY, rbacconfigv3.RBAC_LOG:
			default:
				errs = append(errs, wrap(i, f, "", unsupported("RBAC action "+rules.GetAction().String())))
			}
			for _, name := range sortedPolicyNames(rules) {
				for _, err := range validatePolicy(rules.GetPolicies()[name]) {
					errs = append(errs, wrap(i, f, name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func validatePolicy(p *rbacconfigv3.Policy) []error {
	if p == nil {
		return []error{errors.New("rbac model: nil policy")}
	}
	var errs []error
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
		errs = append(errs, unsupported("policy condition (CEL expression)"))
	}
	for _, perm := range p.GetPermissions() {
		errs = append(errs, validatePermission(perm)...)
	}
	for _, pr := range p.GetPrincipals() {
		errs = append(errs, validatePrincipal(pr)...)
	}
	return errs
}

func validatePermission(p *rbacconfigv3.Permission) []error {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_AndRules:
		var errs []error
		for _, sub := range r.AndRules.GetRules() {
			errs = append(errs, validatePermission(sub)...)
		}
		return errs
	case *rbacconfigv3.Permission_OrRules:
		var errs []error
		for _, sub := range r.OrRules.GetRules() {
			errs = append(errs, validatePermission(sub)...)
		}
		return errs
	case *rbacconfigv3.Permission_NotRule:
		return validatePermission(r.NotRule)
	case *rbacconfigv3.Permission_Any:
		return one(boolErr(r.Any, "permission any: false"))
	case *rbacconfigv3.Permission_Header:
		return one(validateHeader(r.Header))
	case *rbacconfigv3.Permission_UrlPath:
		return one(validatePath(r.UrlPath))
	case *rbacconfigv3.Permission_DestinationIp:
		_, err := parseCIDR(r.DestinationIp)
		return one(err)
	case *rbacconfigv3.Permission_DestinationPort, *rbacconfigv3.Permission_DestinationPortRange:
		return nil
	case *rbacconfigv3.Permission_RequestedServerName:
		return one(validateString(r.RequestedServerName))
	case *rbacconfigv3.Permission_Metadata:
		return one(validateMetadata(r.Metadata))
	case *rbacconfigv3.Permission_SourcedMetadata:
		if r.SourcedMetadata.GetMetadataSource() != rbacconfigv3.MetadataSource_DYNAMIC {
			return one(unsupported("permission.sourced_metadata with source " + r.SourcedMetadata.GetMetadataSource().String()))
		}
		return one(validateMetadata(r.SourcedMetadata.GetMetadataMatcher()))
	default:
		// Delegate the message (matcher, uri_template, unset, unknown) to the evaluator.
		_, err := (&evalCtx{req: &Request{}, layer: LayerNetwork}).permission(p)
		return one(err)
	}
}

func validatePrincipal(p *rbacconfigv3.Principal) []error {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_AndIds:
		var errs []error
		for _, sub := range id.AndIds.GetIds() {
			errs = append(errs, validatePrincipal(sub)...)
		}
		return errs
	case *rbacconfigv3.Principal_OrIds:
		var errs []error
		for _, sub := range id.OrIds.GetIds() {
			errs = append(errs, validatePrincipal(sub)...)
		}
		return errs
	case *rbacconfigv3.Principal_NotId:
		return validatePrincipal(id.NotId)
	case *rbacconfigv3.Principal_Any:
		return one(boolErr(id.Any, "principal any: false"))
	case *rbacconfigv3.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return nil
		}
		return one(validateString(id.Authenticated.GetPrincipalName()))
	case *rbacconfigv3.Principal_SourceIp:
		_, err := parseCIDR(id.SourceIp)
		return one(err)
	case *rbacconfigv3.Principal_DirectRemoteIp:
		_, err := parseCIDR(id.DirectRemoteIp)
		return one(err)
	case *rbacconfigv3.Principal_RemoteIp:
		_, err := parseCIDR(id.RemoteIp)
		return one(err)
	case *rbacconfigv3.Principal_Header:
		return one(validateHeader(id.Header))
	case *rbacconfigv3.Principal_UrlPath:
		return one(validatePath(id.UrlPath))
	case *rbacconfigv3.Principal_Metadata:
		return one(validateMetadata(id.Metadata))
	case *rbacconfigv3.Principal_SourcedMetadata:
		if id.SourcedMetadata.GetMetadataSource() != rbacconfigv3.MetadataSource_DYNAMIC {
			return one(unsupported("principal.sourced_metadata with source " + id.SourcedMetadata.GetMetadataSource().String()))
		}
		return one(validateMetadata(id.SourcedMetadata.GetMetadataMatcher()))
	case *rbacconfigv3.Principal_FilterState:
		if sm, ok := id.FilterState.GetMatcher().(*matcherv3.FilterStateMatcher_StringMatch); ok {
			return one(validateString(sm.StringMatch))
		}
		return one(unsupported(fmt.Sprintf("filter_state matcher %T", id.FilterState.GetMatcher())))
	default:
		_, err := (&evalCtx{req: &Request{}, layer: LayerNetwork}).principal(p)
		return one(err)
	}
}

func validateHeader(h *routev3.HeaderMatcher) error {
	if h == nil {
		return errors.New("rbac model: nil header matcher")
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_SafeRegexMatch:
		_, err := compileRegex(s.SafeRegexMatch.GetRegex())
		return err
	case *routev3.HeaderMatcher_StringMatch:
		return validateString(s.StringMatch)
	case nil, *routev3.HeaderMatcher_ExactMatch, *routev3.HeaderMatcher_RangeMatch, *routev3.HeaderMatcher_PresentMatch,
		*routev3.HeaderMatcher_PrefixMatch, *routev3.HeaderMatcher_SuffixMatch, *routev3.HeaderMatcher_ContainsMatch:
		return nil
	default:
		return unsupported(fmt.Sprintf("header match specifier %T", s))
	}
}

func validatePath(p *matcherv3.PathMatcher) error {
	if r, ok := p.GetRule().(*matcherv3.PathMatcher_Path); ok {
		return validateString(r.Path)
	}
	return unsupported(fmt.Sprintf("path matcher rule %T", p.GetRule()))
}

func validateString(m *matcherv3.StringMatcher) error {
	_, err := matchString(m, "")
	return err
}

func validateMetadata(m *matcherv3.MetadataMatcher) error {
	if m == nil || m.GetValue() == nil {
		return errors.New("rbac model: metadata matcher without value matcher")
	}
	if len(m.GetPath()) == 0 {
		return errors.New("rbac model: metadata matcher without path")
	}
	for _, seg := range m.GetPath() {
		if _, ok := seg.GetSegment().(*matcherv3.MetadataMatcher_PathSegment_Key); !ok {
			return unsupported(fmt.Sprintf("metadata path segment %T", seg.GetSegment()))
		}
	}
	return validateValue(m.GetValue())
}

func validateValue(vm *matcherv3.ValueMatcher) error {
	switch p := vm.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		return validateString(p.StringMatch)
	case *matcherv3.ValueMatcher_ListMatch:
		one, ok := p.ListMatch.GetMatchPattern().(*matcherv3.ListMatcher_OneOf)
		if !ok {
			return unsupported(fmt.Sprintf("list matcher %T", p.ListMatch.GetMatchPattern()))
		}
		return validateValue(one.OneOf)
	case *matcherv3.ValueMatcher_OrMatch:
		var errs []error
		for _, sub := range p.OrMatch.GetValueMatchers() {
			errs = append(errs, validateValue(sub))
		}
		return errors.Join(errs...)
	case *matcherv3.ValueMatcher_DoubleMatch:
		switch p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Range, *matcherv3.DoubleMatcher_Exact:
			return nil
		default:
			return unsupported(fmt.Sprintf("double matcher %T", p.DoubleMatch.GetMatchPattern()))
		}
	case *matcherv3.ValueMatcher_NullMatch_, *matcherv3.ValueMatcher_BoolMatch, *matcherv3.ValueMatcher_PresentMatch:
		return nil
	case nil:
		return errors.New("rbac model: value matcher with no pattern")
	default:
		return unsupported(fmt.Sprintf("value matcher %T", p))
	}
}

func boolErr(ok bool, what string) error {
	if ok {
		return nil
	}
	return errors.New("rbac model: invalid " + what)
}

func one(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}
