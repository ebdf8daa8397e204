package asm

import (
	"fmt"
)

const (
	// AllocatedHTTPPort is the gateway port every HTTP destination without a port gets.
	AllocatedHTTPPort int32 = 10000
	// AllocatedStreamPortMin and AllocatedStreamPortMax bound the gateway ports given to
	// HTTPS/TLS/TCP destinations without a port.
	AllocatedStreamPortMin int32 = 10001
	AllocatedStreamPortMax int32 = 20000
)

// AllocationKey is the key of a destination in AllocateGatewayPorts' result and in ASM's
// status.autoAllocatedGatewayPorts: "<hosts[0]>-<port.number>".
func AllocationKey(t *To) string {
	first := ""
	if len(t.Hosts) > 0 {
		first = t.Hosts[0]
	}
	var n int32
	if t.Port != nil {
		n = t.Port.Number
	}
	return fmt.Sprintf("%s-%d", first, n)
}

// AllocateGatewayPorts gives a gateway port to every destination that has none
// (`byEgressGateway: {}` or no byEgressGateway at all), the way ASM does (Alibaba's published types
// document it on status.autoAllocatedGatewayPorts):
//
//   - HTTP: always 10000. The gateway terminates mTLS and routes by Host, so all HTTP destinations
//     can share one port.
//   - HTTPS, TLS and TCP: one port per "<hosts[0]>-<port>" key, from 10001 up to 20000. Keys are
//     taken in policy order (egressRules in order, then their `to` entries in order); each gets the
//     lowest port in the range that no `to` of the policy names explicitly in
//     byEgressGateway.port and that no earlier key got.
//
// (ASM also gives gRPC 50051; gRPC is not a protocol the CRD accepts here.)
//
// The result maps the key to the port, for the destinations that were allocated one. The gateway
// must expose each allocated port on its Service (the catalog's gateway declares 10000..10003).
func AllocateGatewayPorts(p *Policy) (map[string]int32, error) {
	explicit := map[int32]bool{}
	for i := range p.Spec.EgressRules {
		for k := range p.Spec.EgressRules[i].To {
			if gp := p.Spec.EgressRules[i].To[k].gatewayPort(); gp != 0 {
				explicit[gp] = true
			}
		}
	}
	out := map[string]int32{}
	taken := map[int32]bool{}
	next := AllocatedStreamPortMin
	for i := range p.Spec.EgressRules {
		for k := range p.Spec.EgressRules[i].To {
			t := &p.Spec.EgressRules[i].To[k]
			if t.gatewayPort() != 0 || t.Port == nil {
				continue
			}
			key := AllocationKey(t)
			if _, done := out[key]; done {
				continue
			}
			if t.Port.Protocol == ProtocolHTTP {
				out[key] = AllocatedHTTPPort
				continue
			}
			for next <= AllocatedStreamPortMax && (explicit[next] || taken[next]) {
				next++
			}
			if next > AllocatedStreamPortMax {
				return nil, fmt.Errorf("spec.egressRules[%d].to[%d].byEgressGateway.port: no free gateway port left in %d..%d",
					i, k, AllocatedStreamPortMin, AllocatedStreamPortMax)
			}
			out[key] = next
			taken[next] = true
			next++
		}
	}
	return out, nil
}
