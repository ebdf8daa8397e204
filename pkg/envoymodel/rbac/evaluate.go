package rbac

import (
	"errors"
	"fmt"
	"sort"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
)

// FromHTTP wraps an envoy.filters.http.rbac config.
func FromHTTP(cfg *rbachttpv3.RBAC) *RBACFilter {
	return &RBACFilter{
		Name:             HTTPFilterName,
		Layer:            LayerHTTP,
		Rules:            cfg.GetRules(),
		ShadowRules:      cfg.GetShadowRules(),
		HasMatcher:       cfg.GetMatcher() != nil,
		HasShadowMatcher: cfg.GetShadowMatcher() != nil,
	}
}

// FromNetwork wraps an envoy.filters.network.rbac config.
func FromNetwork(cfg *rbacnetv3.RBAC) *RBACFilter {
	return &RBACFilter{
		Name:             NetworkFilterName,
		Layer:            LayerNetwork,
		Rules:            cfg.GetRules(),
		ShadowRules:      cfg.GetShadowRules(),
		HasMatcher:       cfg.GetMatcher() != nil,
		HasShadowMatcher: cfg.GetShadowMatcher() != nil,
	}
}

// Evaluate runs the RBAC filters in order, as Envoy does, and returns the first denial or an allow.
//
// Network filters see the connection only (no headers); HTTP filters need req.HTTP. A filter without
// enforced rules is skipped; a DENY filter denies on its first matching policy (in lexical order of
// the policy names); an ALLOW filter denies when no policy matches; LOG filters and shadow rules
// never decide. Evaluation short-circuits like Envoy's, so a construct the model does not implement
// is an error only when the decision depends on it; the error is then returned with a zero Decision
// (never a guess).
func Evaluate(filters []*RBACFilter, req Request) (Decision, error) {
	d := Decision{Allowed: true, FilterIndex: -1}
	for i, f := range filters {
		if f == nil {
			return Decision{}, fmt.Errorf("rbac model: filter #%d is nil", i)
		}
		if f.Layer != LayerHTTP && f.Layer != LayerNetwork {
			return Decision{}, fmt.Errorf("rbac model: filter #%d (%s) has unknown layer %q", i, f.Name, f.Layer)
		}
		if f.Layer == LayerHTTP && !req.HTTP {
			return Decision{}, fmt.Errorf("rbac model: filter #%d is an HTTP RBAC filter but the request is not HTTP", i)
		}
		ctx := newCtx(&req, f.Layer)

		if f.ShadowRules != nil || f.HasShadowMatcher {
			d.Shadow = append(d.Shadow, ctx.shadow(i, f))
		}
		if f.HasMatcher {
			return Decision{}, wrap(i, f, "", unsupported("RBAC matcher tree (`matcher` instead of `rules`)"))
		}
		if f.Rules == nil {
			// Envoy: without rules the filter enforces nothing.
			continue
		}
		switch f.Rules.GetAction() {
		case rbacconfigv3.RBAC_DENY:
			name, err := ctx.firstMatch(f.Rules)
			if err != nil {
				return Decision{}, wrap(i, f, name, err)
			}
			if name != "" {
				return deny(d, i, f, ActionDeny, name), nil
			}
		case rbacconfigv3.RBAC_ALLOW:
			name, err := ctx.firstMatch(f.Rules)
			if err != nil {
				return Decision{}, wrap(i, f, name, err)
			}
			if name == "" {
				return deny(d, i, f, ActionAllow, ""), nil
			}
			d.Action = ActionAllow
			d.MatchedPolicy = name
		case rbacconfigv3.RBAC_LOG:
			// Audit only: every request passes. Record the matches the model can decide.
			for _, name := range sortedPolicyNames(f.Rules) {
				ok, err := ctx.policy(f.Rules.GetPolicies()[name])
				if err == nil && ok {
					d.Logged = append(d.Logged, name)
				}
			}
		default:
			return Decision{}, wrap(i, f, "", unsupported("RBAC action "+f.Rules.GetAction().String()))
		}
	}
	return d, nil
}

func deny(d Decision, i int, f *RBACFilter, action, policy string) Decision {
	d.Allowed = false
	d.Action = action
	d.MatchedPolicy = policy
	d.Layer = f.Layer
	d.FilterIndex = i
	return d
}

func wrap(i int, f *RBACFilter, policy string, err error) error {
	where := fmt.Sprintf("filter #%d (%s)", i, f.Name)
	if policy != "" {
		where += " policy " + policy
	}
	var ue *UnsupportedError
	if errors.As(err, &ue) && ue.Where == "" {
		ue.Where = where
		return ue
	}
	return fmt.Errorf("%s: %w", where, err)
}

// firstMatch returns the first policy, in Envoy's (lexical) order, that matches. On an error it
// returns the name of the policy being evaluated together with the error.
func (c *evalCtx) firstMatch(rules *rbacconfigv3.RBAC) (string, error) {
	for _, name := range sortedPolicyNames(rules) {
		ok, err := c.policy(rules.GetPolicies()[name])
		if err != nil {
			return name, err
		}
		if ok {
			return name, nil
		}
	}
	return "", nil
}

// policy matches when any permission and any principal match (and there is no condition, which
// the model does not implement).
func (c *evalCtx) policy(p *rbacconfigv3.Policy) (bool, error) {
	if p == nil {
		return false, errors.New("rbac model: nil policy")
	}
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
		return false, unsupported("policy condition (CEL expression)")
	}
	permOK := false
	for _, perm := range p.GetPermissions() {
		ok, err := c.permission(perm)
		if err != nil {
			return false, err
		}
		if ok {
			permOK = true
			break
		}
	}
	if !permOK {
		return false, nil
	}
	for _, pr := range p.GetPrincipals() {
		ok, err := c.principal(pr)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func (c *evalCtx) shadow(i int, f *RBACFilter) ShadowResult {
	r := ShadowResult{FilterIndex: i, Layer: f.Layer, Allowed: true}
	if f.HasShadowMatcher {
		r.Err = wrap(i, f, "", unsupported("RBAC shadow matcher tree"))
		return r
	}
	r.Action = f.ShadowRules.GetAction().String()
	name, err := c.firstMatch(f.ShadowRules)
	if err != nil {
		r.Err = wrap(i, f, name, err)
		return r
	}
	r.EffectivePolicy = name
	switch f.ShadowRules.GetAction() {
	case rbacconfigv3.RBAC_ALLOW:
		r.Allowed = name != ""
	case rbacconfigv3.RBAC_DENY:
		r.Allowed = name == ""
	}
	return r
}

func sortedPolicyNames(rules *rbacconfigv3.RBAC) []string {
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
