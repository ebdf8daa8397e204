package asm

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// NetworkingAPIVersion is the API version of every generated object.
const NetworkingAPIVersion = "networking.istio.io/v1"

// Kinds of the generated objects, in the order Translate returns them.
const (
	KindServiceEntry    = "ServiceEntry"
	KindGateway         = "Gateway"
	KindDestinationRule = "DestinationRule"
	KindVirtualService  = "VirtualService"
)

// BlockedHost is the destination host of the routes that stop workloads a rule does not select
// from reaching a host over TLS or TCP. No registry ever holds it (".invalid" is reserved, RFC
// 2606), so the sidecar has no cluster for it and Envoy closes the connection: the same outcome as
// REGISTRY_ONLY's BlackHoleCluster (curl sees a reset), under a route that names the policy.
const BlockedHost = "blocked.egressconf.invalid"

// BlockedHTTPStatus is the direct response the sidecar gives a workload that a rule does not
// select when it calls one of the rule's hosts over HTTP: 502, what REGISTRY_ONLY's block_all
// virtual host answers.
const BlockedHTTPStatus = 502

// Gateway describes the egress gateway deployment a policy goes through.
type Gateway struct {
	// Name of the gateway; also the name of its Service.
	Name string
	// Namespace of the gateway's pods and Service.
	Namespace string
	// Labels select the gateway's pods (e.g. istio: egressgateway-a); they become the Gateway's
	// selector.
	Labels map[string]string
	// Ports of the gateway's Service.
	Ports []GatewayPort
}

// GatewayPort is one port of the gateway's Service.
type GatewayPort struct {
	Number     int
	Name       string
	Protocol   string
	TargetPort int
}

// TranslateOptions tunes Translate.
type TranslateOptions struct {
	// OriginationCredentialName, when set, is the credentialName of the TLS origination
	// DestinationRules (httpsUpgrade): a Secret in the gateway's namespace whose CA the gateway
	// trusts for the external hosts (the runner's stand-in CA: egressconf-standin-ca). Empty: no CA
	// reference; the gateway then uses its default trust (the system roots), as ASM does.
	OriginationCredentialName string
	// ClusterDomain is the cluster DNS domain of the gateway Service. Default cluster.local.
	ClusterDomain string
}

// Translate turns a policy into the native Istio resources (networking.istio.io/v1) that produce
// the documented outcomes on any Istio, for the given egress gateway. It validates the policy
// first; it refuses a policy whose spec.byEgressGateway.name is not the gateway given ("unknown
// egress gateway") and one that needs a gateway port the gateway does not have.
//
// The result is deterministic: ServiceEntries, the Gateway, DestinationRules, VirtualServices, each
// kind in policy order. Every object lives in the policy's namespace, is named with the policy
// name as prefix and carries GeneratedLabels(p). See docs/asm-egress-traffic-policy.md for the
// mapping.
func Translate(p *Policy, gw Gateway) ([]*unstructured.Unstructured, error) {
	return TranslateWithOptions(p, gw, TranslateOptions{})
}

// TranslateWithOptions is Translate with options.
func TranslateWithOptions(p *Policy, gw Gateway, opts TranslateOptions) ([]*unstructured.Unstructured, error) {
	if errs := Validate(p); len(errs) > 0 {
		return nil, fmt.Errorf("asm: invalid %s: %w", policyRef(p), errs.ToAggregate())
	}
	if err := checkGateway(p, gw); err != nil {
		return nil, err
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	dests, err := destinations(p, gw)
	if err != nil {
		return nil, err
	}
	t := &translator{p: p, gw: gw, opts: opts, dests: dests}
	return t.objects()
}

func policyRef(p *Policy) string {
	if p == nil {
		return "ASMEgressTrafficPolicy <nil>"
	}
	return fmt.Sprintf("ASMEgressTrafficPolicy %s/%s", p.Namespace, p.Name)
}

func checkGateway(p *Policy, gw Gateway) error {
	if gw.Name == "" || gw.Namespace == "" {
		return fmt.Errorf("asm: gateway descriptor needs a name and a namespace")
	}
	if len(gw.Labels) == 0 {
		return fmt.Errorf("asm: gateway %s/%s: no pod labels to select it by", gw.Namespace, gw.Name)
	}
	if name := p.Spec.ByEgressGateway.Name; name != gw.Name {
		return fmt.Errorf("asm: %s: spec.byEgressGateway.name: unknown egress gateway %q (the egress gateway is %q in namespace %s)",
			policyRef(p), name, gw.Name, gw.Namespace)
	}
	return nil
}

// source is one `from` entry.
type source struct {
	namespace string
	selector  map[string]string
}

func (s source) key() string {
	keys := make([]string, 0, len(s.selector))
	for k := range s.selector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.namespace)
	for _, k := range keys {
		b.WriteString("|" + k + "=" + s.selector[k])
	}
	return b.String()
}

// destination is one distinct `to` entry with every source that may reach it.
type destination struct {
	name    string
	path    *field.Path
	to      *To
	gwPort  int32
	sources []source
}

func (d *destination) protocol() string { return d.to.Port.Protocol }

// http reports whether the gateway terminates the destination's traffic as HTTP.
func (d *destination) http() bool { return d.to.Port.Protocol == ProtocolHTTP }

// passthrough reports whether the sidecar routes the destination by SNI (HTTPS, TLS).
func (d *destination) passthrough() bool {
	return d.to.Port.Protocol == ProtocolHTTPS || d.to.Port.Protocol == ProtocolTLS
}

// destinations collects the distinct destinations in policy order, with their sources and their
// gateway ports, and checks those ports against the gateway.
func destinations(p *Policy, gw Gateway) ([]*destination, error) {
	alloc, err := AllocateGatewayPorts(p)
	if err != nil {
		return nil, fmt.Errorf("asm: %s: %w", policyRef(p), err)
	}
	var out []*destination
	byName := map[string]*destination{}
	seenSource := map[string]map[string]bool{}
	for i := range p.Spec.EgressRules {
		r := &p.Spec.EgressRules[i]
		for k := range r.To {
			t := &r.To[k]
			name := destinationName(t)
			d, ok := byName[name]
			if !ok {
				d = &destination{
					name: name,
					path: field.NewPath("spec", "egressRules").Index(i).Child("to").Index(k),
					to:   t,
				}
				if d.gwPort = t.gatewayPort(); d.gwPort == 0 {
					d.gwPort = alloc[AllocationKey(t)]
				}
				byName[name] = d
				seenSource[name] = map[string]bool{}
				out = append(out, d)
			}
			for _, f := range r.From {
				s := source{namespace: f.Namespace, selector: f.WorkloadSelector}
				if !seenSource[name][s.key()] {
					seenSource[name][s.key()] = true
					d.sources = append(d.sources, s)
				}
			}
		}
	}

	ports := map[int32]bool{}
	for _, gp := range gw.Ports {
		ports[int32(gp.Number)] = true
	}
	mode := map[int32]*destination{}
	for _, d := range out {
		pp := d.path.Child("byEgressGateway", "port")
		how := "set"
		if d.to.gatewayPort() == 0 {
			how = "allocated"
		}
		if !ports[d.gwPort] {
			return nil, fmt.Errorf("asm: %s: %s: egress gateway %s/%s has no port %d (%s for destination %q); declare it on the gateway Service",
				policyRef(p), pp, gw.Namespace, gw.Name, d.gwPort, how, d.name)
		}
		if prev, ok := mode[d.gwPort]; ok && prev.http() != d.http() {
			return nil, fmt.Errorf("asm: %s: %s: gateway port %d (%s) is used for %s by destination %q and for %s by %q: a gateway port carries either HTTP or TLS/TCP destinations",
				policyRef(p), pp, d.gwPort, how, modeName(prev.http()), prev.name, modeName(d.http()), d.name)
		} else if !ok {
			mode[d.gwPort] = d
		}
	}
	return out, nil
}

type translator struct {
	p     *Policy
	gw    Gateway
	opts  TranslateOptions
	dests []*destination
}

func (t *translator) gatewayHost() string {
	return fmt.Sprintf("%s.%s.svc.%s", t.gw.Name, t.gw.Namespace, t.opts.ClusterDomain)
}

// gatewayResourceName is the name of the generated Gateway.
func (t *translator) gatewayResourceName() string { return dnsLabel(slug(t.p.Name)) }

// gatewayRef is how VirtualServices bind to the generated Gateway.
func (t *translator) gatewayRef() string { return t.p.Namespace + "/" + t.gatewayResourceName() }

// subsetName is the DestinationRule subset (toward the gateway) for a destination, or, for SNI
// routed destinations, for one of its hosts.
func subsetName(d *destination, host string) string {
	if d.passthrough() {
		return dnsLabel(d.name, slug(host))
	}
	return dnsLabel(d.name)
}

// exportTo is the exportTo list: "." (the policy's namespace) when local, then the other
// namespaces, sorted, without duplicates.
func (t *translator) exportTo(local bool, namespaces ...string) []any {
	set := map[string]bool{}
	for _, ns := range namespaces {
		if ns == t.p.Namespace {
			local = true
			continue
		}
		set[ns] = true
	}
	var out []any
	if local {
		out = append(out, ".")
	}
	sorted := make([]string, 0, len(set))
	for ns := range set {
		sorted = append(sorted, ns)
	}
	sort.Strings(sorted)
	for _, ns := range sorted {
		out = append(out, ns)
	}
	return out
}

func sourceNamespaces(ss []source) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.namespace)
	}
	return out
}

func (t *translator) object(kind, name string, spec map[string]any) *unstructured.Unstructured {
	lbls := map[string]any{}
	for k, v := range GeneratedLabels(t.p) {
		lbls[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": NetworkingAPIVersion,
		"kind":       kind,
		"metadata": map[string]any{
			"name":        name,
			"namespace":   t.p.Namespace,
			"labels":      lbls,
			"annotations": map[string]any{AnnotationSource: t.p.Namespace + "/" + t.p.Name},
		},
		"spec": spec,
	}}
}

func (t *translator) objects() ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, d := range t.dests {
		out = append(out, t.serviceEntry(d))
	}
	out = append(out, t.gateway())
	out = append(out, t.gatewayDestinationRule())
	for _, d := range t.dests {
		out = append(out, t.originationDestinationRules(d)...)
	}
	for _, d := range t.dests {
		out = append(out, t.meshVirtualService(d))
		out = append(out, t.gatewayVirtualServices(d)...)
	}
	seen := map[string]bool{}
	for _, o := range out {
		k := o.GetKind() + "/" + o.GetName()
		if seen[k] {
			return nil, fmt.Errorf("asm: %s: two generated objects are both %s; rename a destination", policyRef(t.p), k)
		}
		seen[k] = true
	}
	return out, nil
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func strMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func portNumber(n int32) map[string]any { return map[string]any{"number": int64(n)} }

// upgradePortName is the ServiceEntry port name of the httpsUpgrade port.
func upgradePortName(d *destination) string {
	n := fmt.Sprintf("https-%d", d.to.HTTPSUpgrade.Port)
	if n == d.to.Port.Name {
		n = fmt.Sprintf("https-upgrade-%d", d.to.HTTPSUpgrade.Port)
	}
	return n
}

// serviceEntry registers the destination's hosts, visible to its source namespaces (their
// sidecars need the hosts to route them) and to the policy's namespace (the gateway needs them to
// forward).
func (t *translator) serviceEntry(d *destination) *unstructured.Unstructured {
	port := map[string]any{
		"number":   int64(d.to.Port.Number),
		"name":     d.to.Port.Name,
		"protocol": d.protocol(),
	}
	if d.to.Port.TargetPort != 0 {
		port["targetPort"] = int64(d.to.Port.TargetPort)
	}
	ports := []any{port}
	if d.to.upgradeEnabled() {
		ports = append(ports, map[string]any{
			"number":   int64(d.to.HTTPSUpgrade.Port),
			"name":     upgradePortName(d),
			"protocol": ProtocolHTTPS,
		})
	}
	nss := sourceNamespaces(d.sources)
	if t.gw.Namespace != t.p.Namespace {
		nss = append(nss, t.gw.Namespace)
	}
	return t.object(KindServiceEntry, objectName(t.p.Name, d.name), map[string]any{
		"hosts":      strs(d.to.Hosts),
		"location":   "MESH_EXTERNAL",
		"resolution": "DNS",
		"ports":      ports,
		"exportTo":   t.exportTo(true, nss...),
	})
}

// gateway opens the gateway ports the policy uses. HTTP destinations share one server per gateway
// port (protocol HTTPS, ISTIO_MUTUAL: the gateway terminates the sidecar's mTLS and routes by
// Host). TLS/TCP destinations get one server per SNI the sidecar sends (protocol TLS,
// ISTIO_MUTUAL: the gateway terminates the mTLS and forwards the inner stream, which the
// application's own TLS keeps opaque): one per host for HTTPS/TLS, one per destination for TCP.
func (t *translator) gateway() *unstructured.Unstructured {
	type server struct {
		port  int32
		name  string
		proto string
		hosts []string
	}
	var servers []*server
	httpByPort := map[int32]*server{}
	for _, d := range t.dests {
		switch {
		case d.http():
			s, ok := httpByPort[d.gwPort]
			if !ok {
				s = &server{port: d.gwPort, name: fmt.Sprintf("https-%d", d.gwPort), proto: ProtocolHTTPS}
				httpByPort[d.gwPort] = s
				servers = append(servers, s)
			}
			for _, h := range d.to.Hosts {
				if !contains(s.hosts, h) {
					s.hosts = append(s.hosts, h)
				}
			}
		case d.passthrough():
			for _, h := range d.to.Hosts {
				servers = append(servers, &server{
					port: d.gwPort, proto: ProtocolTLS, hosts: []string{h},
					name: dnsLabel(fmt.Sprintf("tls-%d", d.gwPort), subsetName(d, h)),
				})
			}
		default: // TCP
			servers = append(servers, &server{
				port: d.gwPort, proto: ProtocolTLS, hosts: d.to.Hosts,
				name: dnsLabel(fmt.Sprintf("tls-%d", d.gwPort), subsetName(d, "")),
			})
		}
	}
	sort.SliceStable(servers, func(i, j int) bool { return servers[i].port < servers[j].port })
	out := make([]any, 0, len(servers))
	for _, s := range servers {
		out = append(out, map[string]any{
			"port": map[string]any{
				"number":   int64(s.port),
				"name":     s.name,
				"protocol": s.proto,
			},
			"hosts": strs(s.hosts),
			"tls":   map[string]any{"mode": "ISTIO_MUTUAL"},
		})
	}
	return t.object(KindGateway, t.gatewayResourceName(), map[string]any{
		"selector": strMap(t.gw.Labels),
		"servers":  out,
	})
}

// gatewayDestinationRule makes the sidecars reach the gateway with ISTIO_MUTUAL and an SNI the
// gateway's servers match: one subset per destination (per host for SNI-routed ones), each setting
// TLS on the destination's gateway port only.
func (t *translator) gatewayDestinationRule() *unstructured.Unstructured {
	var subsets []any
	var nss []string
	for _, d := range t.dests {
		nss = append(nss, sourceNamespaces(d.sources)...)
		hosts := d.to.Hosts[:1] // HTTP: any host of the server selects it; TCP: no SNI to tell hosts apart
		if d.passthrough() {
			hosts = d.to.Hosts
		}
		for _, h := range hosts {
			subsets = append(subsets, map[string]any{
				"name": subsetName(d, h),
				"trafficPolicy": map[string]any{
					"portLevelSettings": []any{map[string]any{
						"port": portNumber(d.gwPort),
						"tls": map[string]any{
							"mode": "ISTIO_MUTUAL",
							"sni":  h,
						},
					}},
				},
			})
		}
	}
	return t.object(KindDestinationRule, objectName(t.p.Name, "egress-gateway"), map[string]any{
		"host":     t.gatewayHost(),
		"exportTo": t.exportTo(false, nss...),
		"subsets":  subsets,
	})
}

// originationDestinationRules are, for an httpsUpgrade destination, one DestinationRule per host
// that makes the gateway originate TLS (SIMPLE, SNI the host) on the upgrade port. They are
// visible to the gateway's namespace only, so a sidecar that reaches the host on that port itself
// does not wrap the application's TLS a second time.
func (t *translator) originationDestinationRules(d *destination) []*unstructured.Unstructured {
	if !d.to.upgradeEnabled() {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, h := range d.to.Hosts {
		tls := map[string]any{"mode": "SIMPLE", "sni": h}
		if t.opts.OriginationCredentialName != "" {
			tls["credentialName"] = t.opts.OriginationCredentialName
		}
		var nss []string
		if t.gw.Namespace != t.p.Namespace {
			nss = append(nss, t.gw.Namespace)
		}
		out = append(out, t.object(KindDestinationRule, objectName(t.p.Name, d.name, "originate", slug(h)), map[string]any{
			"host":     h,
			"exportTo": t.exportTo(t.gw.Namespace == t.p.Namespace, nss...),
			"trafficPolicy": map[string]any{
				"portLevelSettings": []any{map[string]any{
					"port": portNumber(d.to.HTTPSUpgrade.Port),
					"tls":  tls,
				}},
			},
		}))
	}
	return out
}

// sourceMatch returns the match conditions of the selected workloads: their namespace and, when
// the rule has one, their workloadSelector. extra fields (port, sniHosts) are added to each.
func sourceMatch(ss []source, extra map[string]any) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		m := map[string]any{"sourceNamespace": s.namespace}
		if len(s.selector) > 0 {
			m["sourceLabels"] = strMap(s.selector)
		}
		for k, v := range extra {
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

func (t *translator) gatewayDestination(d *destination, host string) map[string]any {
	return map[string]any{"destination": map[string]any{
		"host":   t.gatewayHost(),
		"subset": subsetName(d, host),
		"port":   portNumber(d.gwPort),
	}}
}

func blockedDestination(port int32) map[string]any {
	return map[string]any{"destination": map[string]any{
		"host": BlockedHost,
		"port": portNumber(port),
	}}
}

// meshVirtualService is the sidecar side. It is bound to `mesh` and exported to the source
// namespaces and the policy's namespace (every namespace that sees the ServiceEntry). Its first
// routes send the selected workloads (sourceNamespace + sourceLabels = workloadSelector) to the
// gateway; the last ones catch every other workload that sees the hosts and block it (HTTP: a
// direct 502 like REGISTRY_ONLY's block_all; TLS/TCP: BlockedHost). Without them Istio would give
// an unselected workload the ServiceEntry's default route, straight to the host.
func (t *translator) meshVirtualService(d *destination) *unstructured.Unstructured {
	spec := map[string]any{
		"hosts":    strs(d.to.Hosts),
		"gateways": []any{"mesh"},
		"exportTo": t.exportTo(true, sourceNamespaces(d.sources)...),
	}
	n := d.to.Port.Number
	switch {
	case d.http():
		spec["http"] = []any{
			map[string]any{
				"name":  dnsLabel(d.name, "via-egress-gateway"),
				"match": sourceMatch(d.sources, map[string]any{"port": int64(n)}),
				"route": []any{t.gatewayDestination(d, d.to.Hosts[0])},
			},
			map[string]any{
				"name":           dnsLabel(d.name, "not-selected"),
				"directResponse": map[string]any{"status": int64(BlockedHTTPStatus)},
			},
		}
		if d.to.upgradeEnabled() {
			// The ServiceEntry also has the upgrade port (the gateway needs it). A selected
			// workload that speaks TLS itself on that port reaches the host directly, as on ASM
			// (ETP-UPG-03); any other workload is blocked.
			u := d.to.HTTPSUpgrade.Port
			var tls []any
			for _, h := range d.to.Hosts {
				tls = append(tls, map[string]any{
					"match": sourceMatch(d.sources, map[string]any{"port": int64(u), "sniHosts": []any{h}}),
					"route": []any{map[string]any{"destination": map[string]any{"host": h, "port": portNumber(u)}}},
				})
			}
			spec["tls"] = append(tls, blockedTLS(d.to.Hosts, u)...)
		}
	case d.passthrough():
		var tls []any
		for _, h := range d.to.Hosts {
			tls = append(tls, map[string]any{
				"match": sourceMatch(d.sources, map[string]any{"port": int64(n), "sniHosts": []any{h}}),
				"route": []any{t.gatewayDestination(d, h)},
			})
		}
		spec["tls"] = append(tls, blockedTLS(d.to.Hosts, n)...)
	default: // TCP
		spec["tcp"] = []any{
			map[string]any{
				"match": sourceMatch(d.sources, map[string]any{"port": int64(n)}),
				"route": []any{t.gatewayDestination(d, d.to.Hosts[0])},
			},
			map[string]any{
				"match": []any{map[string]any{"port": int64(n)}},
				"route": []any{blockedDestination(n)},
			},
		}
	}
	return t.object(KindVirtualService, objectName(t.p.Name, d.name, "mesh"), spec)
}

// blockedTLS blocks each host separately: the sidecar merges TLS matches with the same SNI list,
// so a per-host catch-all is dropped for a workload whose own per-host route already matched,
// where one catch-all over all hosts would collide with it.
func blockedTLS(hosts []string, port int32) []any {
	out := make([]any, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, map[string]any{
			"match": []any{map[string]any{"port": int64(port), "sniHosts": []any{h}}},
			"route": []any{blockedDestination(port)},
		})
	}
	return out
}

// gatewayVirtualServices are the gateway side, bound to the generated Gateway and visible in the
// policy's namespace only. HTTP and HTTPS/TLS destinations get one per host (each host is routed
// to itself); a TCP destination gets one for all its hosts, routed to the first (the sidecar
// cannot tell TCP hosts apart; ASM requires that they resolve to the same addresses).
func (t *translator) gatewayVirtualServices(d *destination) []*unstructured.Unstructured {
	var nss []string
	if t.gw.Namespace != t.p.Namespace {
		nss = append(nss, t.gw.Namespace)
	}
	export := t.exportTo(t.gw.Namespace == t.p.Namespace, nss...)
	match := []any{map[string]any{"port": int64(d.gwPort)}}
	n := d.to.Port.Number

	if !d.http() && !d.passthrough() { // TCP
		return []*unstructured.Unstructured{t.object(KindVirtualService, objectName(t.p.Name, d.name, "gateway"), map[string]any{
			"hosts":    strs(d.to.Hosts),
			"gateways": []any{t.gatewayRef()},
			"exportTo": export,
			"tcp": []any{map[string]any{
				"match": match,
				"route": []any{map[string]any{"destination": map[string]any{"host": d.to.Hosts[0], "port": portNumber(n)}}},
			}},
		})}
	}

	var out []*unstructured.Unstructured
	for _, h := range d.to.Hosts {
		spec := map[string]any{
			"hosts":    []any{h},
			"gateways": []any{t.gatewayRef()},
			"exportTo": export,
		}
		if d.http() {
			to := n
			if d.to.upgradeEnabled() {
				to = d.to.HTTPSUpgrade.Port
			}
			spec["http"] = []any{map[string]any{
				"name":  dnsLabel(d.name, "to", slug(h)),
				"match": match,
				"route": []any{map[string]any{"destination": map[string]any{"host": h, "port": portNumber(to)}}},
			}}
		} else {
			spec["tcp"] = []any{map[string]any{
				"match": match,
				"route": []any{map[string]any{"destination": map[string]any{"host": h, "port": portNumber(n)}}},
			}}
		}
		out = append(out, t.object(KindVirtualService, objectName(t.p.Name, d.name, "gateway", slug(h)), spec))
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
