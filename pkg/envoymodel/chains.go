package envoymodel

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"istio.io/istio/pilot/pkg/simulation"
)

// matchChain picks the filter chain Envoy would for the call, for listeners whose chains carry no
// names (Istio's gateway chains): Envoy's order of criteria, each keeping the most specific chains
// (destination port, destination IP, server name exact > wildcard > none, transport protocol,
// application protocol). The choice is cross-checked against what the simulation matched.
func matchChain(l *listener.Listener, call simulation.Call, r simulation.Result) (*listener.FilterChain, error) {
	chains := slices.Clone(l.GetFilterChains())
	transport := "raw_buffer"
	if call.TLS == simulation.TLS || call.TLS == simulation.MTLS {
		transport = "tls"
	}
	alpn := call.Alpn
	if call.TLS == simulation.Plaintext || call.TLS == "" {
		// Envoy's HTTP inspector sets the protocol of plaintext HTTP.
		switch call.Protocol {
		case simulation.HTTP:
			alpn = "http/1.1"
		case simulation.HTTP2:
			alpn = "h2c"
		}
	}
	chains = most(chains, func(m *listener.FilterChainMatch) int {
		if p := m.GetDestinationPort(); p != nil {
			if int(p.GetValue()) == call.Port {
				return 2
			}
			return -1
		}
		return 1
	})
	chains = most(chains, func(m *listener.FilterChainMatch) int {
		if len(m.GetPrefixRanges()) == 0 {
			return 0
		}
		addr, err := netip.ParseAddr(call.Address)
		if err != nil {
			return -1
		}
		best := -1
		for _, pr := range m.GetPrefixRanges() {
			pfx, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", pr.GetAddressPrefix(), pr.GetPrefixLen().GetValue()))
			if err == nil && pfx.Contains(addr) && pfx.Bits()+1 > best {
				best = pfx.Bits() + 1
			}
		}
		return best
	})
	chains = most(chains, func(m *listener.FilterChainMatch) int {
		names := m.GetServerNames()
		if len(names) == 0 {
			return 0
		}
		if slices.Contains(names, call.Sni) {
			return 1 << 20
		}
		best := -1
		for _, n := range names {
			if strings.HasPrefix(n, "*.") && strings.HasSuffix(call.Sni, n[1:]) && len(n) > best {
				best = len(n)
			}
		}
		return best
	})
	chains = most(chains, func(m *listener.FilterChainMatch) int {
		switch tp := m.GetTransportProtocol(); {
		case tp == "":
			return 0
		case tp == transport:
			return 1
		default:
			return -1
		}
	})
	chains = most(chains, func(m *listener.FilterChainMatch) int {
		aps := m.GetApplicationProtocols()
		if len(aps) == 0 {
			return 0
		}
		for _, a := range strings.Split(alpn, ",") {
			if slices.Contains(aps, a) {
				return 1
			}
		}
		return -1
	})
	if len(chains) > 1 {
		// Same match, different targets: keep the one the simulation routed through.
		var same []*listener.FilterChain
		for _, fc := range chains {
			if t, _ := chainTarget(fc); t != "" && (t == r.RouteConfigMatched || t == r.ClusterMatched) {
				same = append(same, fc)
			}
		}
		chains = same
	}
	switch {
	case len(chains) == 1:
		return chains[0], nil
	case len(chains) == 0 && l.GetDefaultFilterChain() != nil:
		return l.GetDefaultFilterChain(), nil
	default:
		return nil, OutOfModel("listener %s: %d filter chains match %s:%d sni=%q", l.GetName(), len(chains), call.Address, call.Port, call.Sni)
	}
}

// most keeps the chains with the highest score; a negative score never matches.
func most(chains []*listener.FilterChain, score func(*listener.FilterChainMatch) int) []*listener.FilterChain {
	best := -1
	var out []*listener.FilterChain
	for _, fc := range chains {
		s := score(fc.GetFilterChainMatch())
		switch {
		case s < 0 || s < best:
		case s > best:
			best, out = s, []*listener.FilterChain{fc}
		default:
			out = append(out, fc)
		}
	}
	return out
}

// chainTarget is the chain's RDS route configuration or tcp_proxy cluster.
func chainTarget(fc *listener.FilterChain) (string, error) {
	h, err := extractHCM(fc)
	if err != nil {
		return "", err
	}
	if h != nil {
		if h.GetRds() != nil {
			return h.GetRds().GetRouteConfigName(), nil
		}
		return h.GetRouteConfig().GetName(), nil
	}
	var tp *tcpproxy.TcpProxy
	if tp, err = extractTCPProxy(fc); err != nil || tp == nil {
		return "", err
	}
	return tp.GetCluster(), nil
}
