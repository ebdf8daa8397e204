package rbac

import (
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Extract returns the RBAC configs of a filter chain of a listener, each list in chain order:
// the network RBAC filters (envoy.filters.network.rbac) of the chain, and the HTTP RBAC filters
// (envoy.filters.http.rbac) of its HttpConnectionManager. A nil chain means the listener's default
// filter chain. Filters are recognised by their typed_config type URL.
//
// It fails, rather than return a partial picture, when the chain holds authorization the model
// cannot evaluate: ext_authz filters (Istio's CUSTOM action), RBAC filters whose config comes from
// ECDS, or HTTP RBAC filters disabled by default (enabled per route).
func Extract(l *listenerv3.Listener, chain *listenerv3.FilterChain) (http []*rbachttpv3.RBAC, network []*rbacnetv3.RBAC, err error) {
	chain, err = resolveChain(l, chain)
	if err != nil {
		return nil, nil, err
	}
	where := func(kind, name string) string {
		return fmt.Sprintf("listener %q chain %q %s filter %q", l.GetName(), chain.GetName(), kind, name)
	}
	for _, f := range chain.GetFilters() {
		if cd := f.GetConfigDiscovery(); cd != nil {
			if slices.Contains(cd.GetTypeUrls(), NetworkRBACTypeURL) || slices.Contains(cd.GetTypeUrls(), NetExtAuthzType) {
				return nil, nil, &UnsupportedError{What: "authorization filter configured by ECDS", Where: where("network", f.GetName())}
			}
			continue
		}
		typeURL := f.GetTypedConfig().GetTypeUrl()
		switch {
		case typeURL == NetworkRBACTypeURL:
			cfg := &rbacnetv3.RBAC{}
			if err := unmarshal(f.GetTypedConfig(), cfg, where("network", f.GetName())); err != nil {
				return nil, nil, err
			}
			network = append(network, cfg)
		case typeURL == NetExtAuthzType:
			return nil, nil, &UnsupportedError{What: "ext_authz filter (CUSTOM authorization)", Where: where("network", f.GetName())}
		case typeURL == HCMTypeURL:
			hcm := &hcmv3.HttpConnectionManager{}
			if err := unmarshal(f.GetTypedConfig(), hcm, where("network", f.GetName())); err != nil {
				return nil, nil, err
			}
			for _, hf := range hcm.GetHttpFilters() {
				if cd := hf.GetConfigDiscovery(); cd != nil {
					if slices.Contains(cd.GetTypeUrls(), HTTPRBACTypeURL) || slices.Contains(cd.GetTypeUrls(), HTTPExtAuthzType) {
						return nil, nil, &UnsupportedError{What: "authorization filter configured by ECDS", Where: where("http", hf.GetName())}
					}
					continue
				}
				switch hf.GetTypedConfig().GetTypeUrl() {
				case HTTPRBACTypeURL:
					if hf.GetDisabled() {
						return nil, nil, &UnsupportedError{What: "HTTP RBAC filter disabled by default (per-route enablement)", Where: where("http", hf.GetName())}
					}
					cfg := &rbachttpv3.RBAC{}
					if err := unmarshal(hf.GetTypedConfig(), cfg, where("http", hf.GetName())); err != nil {
						return nil, nil, err
					}
					http = append(http, cfg)
				case HTTPExtAuthzType:
					if !hf.GetDisabled() {
						return nil, nil, &UnsupportedError{What: "ext_authz filter (CUSTOM authorization)", Where: where("http", hf.GetName())}
					}
				default:
					if hf.GetName() == HTTPFilterName {
						return nil, nil, fmt.Errorf("rbac model: %s has type %q, not %s", where("http", hf.GetName()), hf.GetTypedConfig().GetTypeUrl(), HTTPRBACTypeURL)
					}
				}
			}
		default:
			if f.GetName() == NetworkFilterName {
				return nil, nil, fmt.Errorf("rbac model: %s has type %q, not %s", where("network", f.GetName()), typeURL, NetworkRBACTypeURL)
			}
		}
	}
	return http, network, nil
}

// FiltersForChain returns the chain's RBAC filters in the order Envoy runs them: the network RBAC
// filters (connection time), then the HTTP RBAC filters (per request). Pass the result to Evaluate.
func FiltersForChain(l *listenerv3.Listener, chain *listenerv3.FilterChain) ([]*RBACFilter, error) {
	http, network, err := Extract(l, chain)
	if err != nil {
		return nil, err
	}
	out := make([]*RBACFilter, 0, len(http)+len(network))
	for _, n := range network {
		out = append(out, FromNetwork(n))
	}
	for _, h := range http {
		out = append(out, FromHTTP(h))
	}
	return out, nil
}

// FilterChainByName finds a filter chain of l by name (as simulation.Result.FilterChainMatched
// reports it), including the default filter chain. Nil when there is none.
func FilterChainByName(l *listenerv3.Listener, name string) *listenerv3.FilterChain {
	for _, fc := range l.GetFilterChains() {
		if fc.GetName() == name {
			return fc
		}
	}
	if dfc := l.GetDefaultFilterChain(); dfc != nil && dfc.GetName() == name {
		return dfc
	}
	return nil
}

func resolveChain(l *listenerv3.Listener, chain *listenerv3.FilterChain) (*listenerv3.FilterChain, error) {
	if chain != nil {
		return chain, nil
	}
	if l == nil {
		return nil, fmt.Errorf("rbac model: no listener and no filter chain")
	}
	if l.GetDefaultFilterChain() == nil {
		return nil, fmt.Errorf("rbac model: listener %q has no default filter chain and none was given", l.GetName())
	}
	return l.GetDefaultFilterChain(), nil
}

func unmarshal(a *anypb.Any, into proto.Message, where string) error {
	if err := a.UnmarshalTo(into); err != nil {
		return fmt.Errorf("rbac model: %s: %w", where, err)
	}
	return nil
}
