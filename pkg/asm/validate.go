package asm

import (
	"fmt"
	"reflect"
	"strings"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a policy against every rule the documents (and Alibaba's published types) state,
// plus the few the translation needs. Each error names the field path it is about. An empty list
// means the policy can be translated (given a gateway that has the ports it uses).
//
// Rules, with the path each error carries:
//   - metadata.name: required, a DNS-1123 subdomain.
//   - metadata.namespace: must be istio-egress ("This value is fixed to istio-egress"). The CRD's
//     OpenAPI schema cannot express this (see CRD); Validate is where it is enforced.
//   - spec.byEgressGateway: required, with a name; its port, if set, 1..65535.
//   - spec.egressRules: at least one; each with at least one from and one to.
//   - spec.egressRules[i].from[j].namespace: required, a DNS-1123 label; workloadSelector: valid labels.
//   - spec.egressRules[i].to[k].hosts: 1..50, each a DNS name (no wildcard), no duplicates.
//   - spec.egressRules[i].to[k].port: required, with number (1..65535), name (DNS-1123 label) and
//     protocol (HTTP, HTTPS, TLS or TCP).
//   - spec.egressRules[i].to[k].byEgressGateway.port: 1..65535 when set; .name empty or the
//     spec-level name.
//   - spec.egressRules[i].to[k].httpsUpgrade: when enabled, port is required (1..65535, not the
//     destination port itself) and port.protocol must be HTTP.
//   - a host used by two destinations with different protocols ("mixing protocols") is refused;
//     with the same protocol it is refused too (a host belongs to one destination). The same
//     destination (same name, identical definition) may be listed under several rules.
//   - a gateway port carries either HTTP destinations (terminated at the gateway) or TLS/TCP
//     streams, not both.
func Validate(p *Policy) field.ErrorList {
	var errs field.ErrorList
	if p == nil {
		return field.ErrorList{field.Required(field.NewPath(""), "policy is nil")}
	}

	md := field.NewPath("metadata")
	if p.Name == "" {
		errs = append(errs, field.Required(md.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(p.Name) {
			errs = append(errs, field.Invalid(md.Child("name"), p.Name, msg))
		}
	}
	switch p.Namespace {
	case RequiredNamespace:
	case "":
		errs = append(errs, field.Required(md.Child("namespace"), "must be "+RequiredNamespace))
	default:
		errs = append(errs, field.Invalid(md.Child("namespace"), p.Namespace, "must be "+RequiredNamespace))
	}

	spec := field.NewPath("spec")
	gwName := ""
	if p.Spec.ByEgressGateway == nil {
		errs = append(errs, field.Required(spec.Child("byEgressGateway"), "the egress gateway the rules go through"))
	} else {
		b := spec.Child("byEgressGateway")
		gwName = p.Spec.ByEgressGateway.Name
		if gwName == "" {
			errs = append(errs, field.Required(b.Child("name"), "the name of the egress gateway"))
		}
		if pt := p.Spec.ByEgressGateway.Port; pt != nil {
			errs = append(errs, validatePortNumber(b.Child("port"), *pt)...)
		}
	}

	rules := spec.Child("egressRules")
	if len(p.Spec.EgressRules) == 0 {
		errs = append(errs, field.Required(rules, "at least one rule is required"))
	}
	for i := range p.Spec.EgressRules {
		r := &p.Spec.EgressRules[i]
		rp := rules.Index(i)
		if len(r.From) == 0 {
			errs = append(errs, field.Required(rp.Child("from"), "at least one source is required"))
		}
		for j, f := range r.From {
			fp := rp.Child("from").Index(j)
			if f.Namespace == "" {
				errs = append(errs, field.Required(fp.Child("namespace"), ""))
			} else {
				for _, msg := range validation.IsDNS1123Label(f.Namespace) {
					errs = append(errs, field.Invalid(fp.Child("namespace"), f.Namespace, msg))
				}
			}
			errs = append(errs, metav1validation.ValidateLabels(f.WorkloadSelector, fp.Child("workloadSelector"))...)
		}
		if len(r.To) == 0 {
			errs = append(errs, field.Required(rp.Child("to"), "at least one destination is required"))
		}
		for k := range r.To {
			errs = append(errs, validateTo(rp.Child("to").Index(k), &r.To[k], gwName)...)
		}
	}

	errs = append(errs, validateAcrossDestinations(p)...)
	return errs
}

func validateTo(tp *field.Path, t *To, gwName string) field.ErrorList {
	var errs field.ErrorList
	if t.Name != "" {
		for _, msg := range validation.IsDNS1123Label(t.Name) {
			errs = append(errs, field.Invalid(tp.Child("name"), t.Name, msg))
		}
	}

	hp := tp.Child("hosts")
	switch {
	case len(t.Hosts) == 0:
		errs = append(errs, field.Required(hp, "1 to 50 hosts"))
	case len(t.Hosts) > MaxHosts:
		errs = append(errs, field.TooMany(hp, len(t.Hosts), MaxHosts))
	}
	seen := map[string]bool{}
	for m, h := range t.Hosts {
		errs = append(errs, validateHost(hp.Index(m), h)...)
		if seen[h] {
			errs = append(errs, field.Duplicate(hp.Index(m), h))
		}
		seen[h] = true
	}

	pp := tp.Child("port")
	if t.Port == nil {
		errs = append(errs, field.Required(pp, "a port with number, name and protocol"))
	} else {
		if t.Port.Number == 0 {
			errs = append(errs, field.Required(pp.Child("number"), ""))
		} else {
			errs = append(errs, validatePortNumber(pp.Child("number"), t.Port.Number)...)
		}
		if t.Port.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(t.Port.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), t.Port.Name, msg))
			}
		}
		switch t.Port.Protocol {
		case ProtocolHTTP, ProtocolHTTPS, ProtocolTLS, ProtocolTCP:
		case "":
			errs = append(errs, field.Required(pp.Child("protocol"), "one of "+strings.Join(Protocols, ", ")))
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), t.Port.Protocol, Protocols))
		}
		if t.Port.TargetPort != 0 {
			errs = append(errs, validatePortNumber(pp.Child("targetPort"), t.Port.TargetPort)...)
		}
	}

	if b := t.ByEgressGateway; b != nil {
		bp := tp.Child("byEgressGateway")
		if b.Name != "" && gwName != "" && b.Name != gwName {
			errs = append(errs, field.Invalid(bp.Child("name"), b.Name,
				fmt.Sprintf("must be empty or %q (spec.byEgressGateway.name): a policy goes through one gateway", gwName)))
		}
		if b.Port != nil {
			errs = append(errs, validatePortNumber(bp.Child("port"), *b.Port)...)
		}
	}

	if u := t.HTTPSUpgrade; u != nil {
		up := tp.Child("httpsUpgrade")
		if u.Port != 0 {
			errs = append(errs, validatePortNumber(up.Child("port"), u.Port)...)
		}
		if u.Enabled {
			if u.Port == 0 {
				errs = append(errs, field.Required(up.Child("port"), "required when httpsUpgrade.enabled is true"))
			}
			if t.Port != nil && t.Port.Protocol != ProtocolHTTP {
				errs = append(errs, field.Invalid(up.Child("enabled"), true,
					fmt.Sprintf("httpsUpgrade is only supported with port.protocol HTTP, not %q", t.Port.Protocol)))
			}
			if t.Port != nil && u.Port != 0 && u.Port == t.Port.Number {
				errs = append(errs, field.Invalid(up.Child("port"), u.Port,
					"must differ from port.number: the gateway upgrades to another port"))
			}
		}
	}
	return errs
}

func validatePortNumber(p *field.Path, n int32) field.ErrorList {
	if n < 1 || n > 65535 {
		return field.ErrorList{field.Invalid(p, n, "must be between 1 and 65535, inclusive")}
	}
	return nil
}

func validateHost(p *field.Path, h string) field.ErrorList {
	if h == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	if strings.Contains(h, "*") {
		return field.ErrorList{field.Invalid(p, h, "wildcard hosts are not supported (the hosts are resolved by DNS)")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(h) {
		errs = append(errs, field.Invalid(p, h, msg))
	}
	return errs
}

// destRef is one occurrence of a destination in the policy.
type destRef struct {
	path *field.Path
	to   *To
}

// validateAcrossDestinations checks the rules that span several `to` entries.
func validateAcrossDestinations(p *Policy) field.ErrorList {
	var errs field.ErrorList
	byName := map[string]destRef{}
	type hostUse struct {
		path     *field.Path
		dest     string
		protocol string
	}
	hosts := map[string]hostUse{}
	type portUse struct {
		path *field.Path
		http bool
	}
	gwPorts := map[int32]portUse{}

	for i := range p.Spec.EgressRules {
		for k := range p.Spec.EgressRules[i].To {
			t := &p.Spec.EgressRules[i].To[k]
			tp := field.NewPath("spec", "egressRules").Index(i).Child("to").Index(k)
			if t.Port == nil || len(t.Hosts) == 0 {
				continue // already reported
			}
			name := destinationName(t)
			if prev, ok := byName[name]; ok {
				if !reflect.DeepEqual(prev.to, t) {
					what := "name"
					if t.Name == "" {
						what = "derived name (first host and port)"
					}
					errs = append(errs, field.Invalid(tp, name, fmt.Sprintf(
						"destination %s %q is already defined differently at %s; a destination listed under several rules must be identical",
						what, name, prev.path)))
				}
				continue // same destination again: its hosts were checked the first time
			}
			byName[name] = destRef{path: tp, to: t}

			for m, h := range t.Hosts {
				prev, ok := hosts[h]
				if !ok {
					hosts[h] = hostUse{path: tp.Child("hosts").Index(m), dest: name, protocol: t.Port.Protocol}
					continue
				}
				if prev.dest == name {
					continue // duplicate within the list, reported by validateTo
				}
				if prev.protocol != t.Port.Protocol {
					errs = append(errs, field.Invalid(tp.Child("hosts").Index(m), h, fmt.Sprintf(
						"mixes protocols: host is used with protocol %s at %s and with %s here",
						prev.protocol, prev.path, t.Port.Protocol)))
				} else {
					errs = append(errs, field.Invalid(tp.Child("hosts").Index(m), h, fmt.Sprintf(
						"host is already routed by destination %q at %s; a host belongs to one destination",
						prev.dest, prev.path)))
				}
			}

			if gp := t.gatewayPort(); gp != 0 {
				isHTTP := t.Port.Protocol == ProtocolHTTP
				if prev, ok := gwPorts[gp]; ok && prev.http != isHTTP {
					errs = append(errs, field.Invalid(tp.Child("byEgressGateway", "port"), gp, fmt.Sprintf(
						"gateway port %d is used for %s at %s: a gateway port carries either HTTP or TLS/TCP destinations",
						gp, modeName(prev.http), prev.path)))
				} else if !ok {
					gwPorts[gp] = portUse{path: tp.Child("byEgressGateway", "port"), http: isHTTP}
				}
			}
		}
	}
	return errs
}

func modeName(http bool) string {
	if http {
		return "HTTP"
	}
	return "TLS/TCP"
}
