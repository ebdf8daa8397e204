package asm

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestSeedsAreValid(t *testing.T) {
	for _, name := range []string{
		"seed-http.yaml", "seed-https-upgrade.yaml", "seed-https-passthrough.yaml", "seed-tcp.yaml",
		"seed-older-http.yaml", "seed-older-https-upgrade.yaml", "seed-older-https-passthrough.yaml",
		"multi-rule.yaml",
	} {
		p, err := Parse(readTestdata(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if errs := Validate(p); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs.ToAggregate())
		}
	}
}

// validationCases: one per rule. Each mutates the HTTP seed (or the named one) and expects exactly
// one error, of the given type, at the given path, whose message contains detail.
var validationCases = []struct {
	rule   string
	seed   string
	mutate func(p *Policy)
	typ    field.ErrorType
	path   string
	detail string
}{
	{"namespace must be istio-egress", "", func(p *Policy) { p.Namespace = "default" },
		field.ErrorTypeInvalid, "metadata.namespace", "must be istio-egress"},
	{"namespace is required", "", func(p *Policy) { p.Namespace = "" },
		field.ErrorTypeRequired, "metadata.namespace", "must be istio-egress"},
	{"name is required", "", func(p *Policy) { p.Name = "" },
		field.ErrorTypeRequired, "metadata.name", ""},
	{"byEgressGateway is required", "", func(p *Policy) { p.Spec.ByEgressGateway = nil },
		field.ErrorTypeRequired, "spec.byEgressGateway", ""},
	{"byEgressGateway.name is required", "", func(p *Policy) { p.Spec.ByEgressGateway.Name = "" },
		field.ErrorTypeRequired, "spec.byEgressGateway.name", ""},
	{"spec byEgressGateway.port in 1..65535", "", func(p *Policy) { p.Spec.ByEgressGateway.Port = Int32(0) },
		field.ErrorTypeInvalid, "spec.byEgressGateway.port", "between 1 and 65535"},
	{"at least one rule", "", func(p *Policy) { p.Spec.EgressRules = nil },
		field.ErrorTypeRequired, "spec.egressRules", "at least one rule"},
	{"at least one from", "", func(p *Policy) { p.Spec.EgressRules[0].From = nil },
		field.ErrorTypeRequired, "spec.egressRules[0].from", "at least one source"},
	{"from.namespace is required", "", func(p *Policy) { p.Spec.EgressRules[0].From[0].Namespace = "" },
		field.ErrorTypeRequired, "spec.egressRules[0].from[0].namespace", ""},
	{"from.namespace is a DNS label", "", func(p *Policy) { p.Spec.EgressRules[0].From[0].Namespace = "My_Test" },
		field.ErrorTypeInvalid, "spec.egressRules[0].from[0].namespace", "RFC 1123"},
	{"workloadSelector holds valid labels", "", func(p *Policy) {
		p.Spec.EgressRules[0].From[0].WorkloadSelector = map[string]string{"app": "sleep a"}
	}, field.ErrorTypeInvalid, "spec.egressRules[0].from[0].workloadSelector", "a valid label"},
	{"at least one to", "", func(p *Policy) { p.Spec.EgressRules[0].To = nil },
		field.ErrorTypeRequired, "spec.egressRules[0].to", "at least one destination"},
	{"to.name is a DNS label", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Name = "HTTPBin" },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].name", "RFC 1123"},
	{"at least one host", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Hosts = nil },
		field.ErrorTypeRequired, "spec.egressRules[0].to[0].hosts", "1 to 50"},
	{"at most 50 hosts", "", func(p *Policy) {
		var hs []string
		for i := 0; i < 51; i++ {
			hs = append(hs, "h"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.com")
		}
		p.Spec.EgressRules[0].To[0].Hosts = hs
	}, field.ErrorTypeTooMany, "spec.egressRules[0].to[0].hosts", "50"},
	{"hosts are DNS names", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Hosts[1] = "not a host" },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].hosts[1]", "RFC 1123"},
	{"hosts are not wildcards", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Hosts[1] = "*.httpbin.org" },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].hosts[1]", "wildcard"},
	{"hosts are not repeated", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Hosts[1] = "www.httpbin.org" },
		field.ErrorTypeDuplicate, "spec.egressRules[0].to[0].hosts[1]", ""},
	{"port is required", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port = nil },
		field.ErrorTypeRequired, "spec.egressRules[0].to[0].port", "number, name and protocol"},
	{"port.number is required", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Number = 0 },
		field.ErrorTypeRequired, "spec.egressRules[0].to[0].port.number", ""},
	{"port.number in 1..65535", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Number = 70000 },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].port.number", "between 1 and 65535"},
	{"port.name is required", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Name = "" },
		field.ErrorTypeRequired, "spec.egressRules[0].to[0].port.name", ""},
	{"port.protocol is required", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Protocol = "" },
		field.ErrorTypeRequired, "spec.egressRules[0].to[0].port.protocol", "HTTP, HTTPS, TLS, TCP"},
	{"port.protocol is HTTP, HTTPS, TLS or TCP", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Protocol = "GRPC" },
		field.ErrorTypeNotSupported, "spec.egressRules[0].to[0].port.protocol", `"HTTP", "HTTPS", "TLS", "TCP"`},
	{"protocol is case-sensitive", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].Port.Protocol = "http" },
		field.ErrorTypeNotSupported, "spec.egressRules[0].to[0].port.protocol", ""},
	{"byEgressGateway.port in 1..65535", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].ByEgressGateway.Port = Int32(65536) },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].byEgressGateway.port", "between 1 and 65535"},
	{"byEgressGateway.port may not be 0", "", func(p *Policy) { p.Spec.EgressRules[0].To[0].ByEgressGateway.Port = Int32(0) },
		field.ErrorTypeInvalid, "spec.egressRules[0].to[0].byEgressGateway.port", "between 1 and 65535"},
	{"to byEgressGateway.name is the policy's gateway", "", func(p *Policy) {
		p.Spec.EgressRules[0].To[0].ByEgressGateway.Name = "another-gateway"
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[0].byEgressGateway.name", "one gateway"},
	{"httpsUpgrade.port is required when enabled", "seed-https-upgrade.yaml", func(p *Policy) {
		p.Spec.EgressRules[0].To[0].HTTPSUpgrade.Port = 0
	}, field.ErrorTypeRequired, "spec.egressRules[0].to[0].httpsUpgrade.port", "when httpsUpgrade.enabled is true"},
	{"httpsUpgrade.port in 1..65535", "seed-https-upgrade.yaml", func(p *Policy) {
		p.Spec.EgressRules[0].To[0].HTTPSUpgrade.Port = -443
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[0].httpsUpgrade.port", "between 1 and 65535"},
	{"httpsUpgrade only with HTTP", "seed-https-passthrough.yaml", func(p *Policy) {
		p.Spec.EgressRules[0].To[0].HTTPSUpgrade = &HTTPSUpgrade{Enabled: true, Port: 8443}
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[0].httpsUpgrade.enabled", "only supported with port.protocol HTTP"},
	{"httpsUpgrade.port differs from the port", "seed-https-upgrade.yaml", func(p *Policy) {
		p.Spec.EgressRules[0].To[0].HTTPSUpgrade.Port = 80
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[0].httpsUpgrade.port", "must differ"},
	{"mixing protocols is refused", "", func(p *Policy) {
		p.Spec.EgressRules = append(p.Spec.EgressRules, EgressRule{
			From: p.Spec.EgressRules[0].From,
			To: []To{{Name: "httpbin-service-https", Hosts: []string{"httpbin.org"},
				Port: &Port{Number: 443, Name: "https", Protocol: ProtocolHTTPS}, ByEgressGateway: &ByEgressGateway{Port: Int32(444)}}},
		})
	}, field.ErrorTypeInvalid, "spec.egressRules[1].to[0].hosts[0]", "mixes protocols: host is used with protocol HTTP at spec.egressRules[0].to[0].hosts[1] and with HTTPS here"},
	{"a host belongs to one destination", "", func(p *Policy) {
		p.Spec.EgressRules[0].To = append(p.Spec.EgressRules[0].To, To{Name: "other", Hosts: []string{"www.httpbin.org"},
			Port: &Port{Number: 8080, Name: "http-alt", Protocol: ProtocolHTTP}})
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[1].hosts[0]", "already routed by destination \"httpbin-service-http\""},
	{"a destination reused under another rule is identical", "", func(p *Policy) {
		again := p.Spec.EgressRules[0].To[0].deepCopy()
		again.Hosts = again.Hosts[:1]
		p.Spec.EgressRules = append(p.Spec.EgressRules, EgressRule{
			From: []From{{Namespace: "otherns"}}, To: []To{again},
		})
	}, field.ErrorTypeInvalid, "spec.egressRules[1].to[0]", "already defined differently at spec.egressRules[0].to[0]"},
	{"a gateway port carries HTTP or TLS/TCP", "", func(p *Policy) {
		p.Spec.EgressRules[0].To = append(p.Spec.EgressRules[0].To, To{Name: "aliyun", Hosts: []string{"www.alibabacloud.com"},
			Port: &Port{Number: 443, Name: "tcp", Protocol: ProtocolTCP}, ByEgressGateway: &ByEgressGateway{Port: Int32(80)}})
	}, field.ErrorTypeInvalid, "spec.egressRules[0].to[1].byEgressGateway.port", "is used for HTTP at spec.egressRules[0].to[0]"},
}

func TestValidateRules(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.rule, func(t *testing.T) {
			seed := tc.seed
			if seed == "" {
				seed = "seed-http.yaml"
			}
			p, err := Parse(readTestdata(t, seed))
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(p)
			errs := Validate(p)
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %d: %v", len(errs), errs.ToAggregate())
			}
			e := errs[0]
			if e.Type != tc.typ || e.Field != tc.path || !strings.Contains(e.Error(), tc.detail) {
				t.Errorf("got %s (type %s, field %s), want type %s at %s containing %q", e.Error(), e.Type, e.Field, tc.typ, tc.path, tc.detail)
			}
			if !strings.HasPrefix(e.Error(), tc.path+": ") {
				t.Errorf("message %q does not start with the field path", e.Error())
			}
		})
	}
}

func TestValidateAcceptsWhatTheDocumentsAllow(t *testing.T) {
	cases := map[string]func(p *Policy){
		// "If this value is set to false, the value of the port parameter under httpsUpgrade does
		// not take effect."
		"httpsUpgrade disabled, any port, any protocol": func(p *Policy) {
			p.Spec.EgressRules[0].To[0].Port = &Port{Number: 443, Name: "https", Protocol: ProtocolHTTPS}
			p.Spec.EgressRules[0].To[0].HTTPSUpgrade = &HTTPSUpgrade{Enabled: false, Port: 443}
		},
		"no workloadSelector: the whole namespace": func(p *Policy) { p.Spec.EgressRules[0].From[0].WorkloadSelector = nil },
		"no byEgressGateway on a to: allocated":    func(p *Policy) { p.Spec.EgressRules[0].To[0].ByEgressGateway = nil },
		"byEgressGateway: {} on a to: allocated": func(p *Policy) {
			p.Spec.EgressRules[0].To[0].ByEgressGateway = &ByEgressGateway{}
		},
		"to byEgressGateway.name repeating the gateway": func(p *Policy) {
			p.Spec.EgressRules[0].To[0].ByEgressGateway.Name = p.Spec.ByEgressGateway.Name
		},
		"no to name": func(p *Policy) { p.Spec.EgressRules[0].To[0].Name = "" },
		"50 hosts": func(p *Policy) {
			var hs []string
			for i := 0; i < 50; i++ {
				hs = append(hs, string(rune('a'+i%26))+string(rune('a'+i/26))+".example.com")
			}
			p.Spec.EgressRules[0].To[0].Hosts = hs
		},
		"the same destination under two rules": func(p *Policy) {
			p.Spec.EgressRules = append(p.Spec.EgressRules, EgressRule{
				Name: "second", From: []From{{Namespace: "otherns"}}, To: []To{p.Spec.EgressRules[0].To[0].deepCopy()},
			})
		},
		"two destinations on one HTTP gateway port": func(p *Policy) {
			p.Spec.EgressRules[0].To = append(p.Spec.EgressRules[0].To, To{Name: "aliyun", Hosts: []string{"www.aliyun.com"},
				Port: &Port{Number: 80, Name: "http", Protocol: ProtocolHTTP}, ByEgressGateway: &ByEgressGateway{Port: Int32(80)}})
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(readTestdata(t, "seed-http.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			mutate(p)
			if errs := Validate(p); len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			p.Spec.ByEgressGateway.Name = fixtureGateway().Name
			if p.Spec.EgressRules[0].To[0].ByEgressGateway != nil && p.Spec.EgressRules[0].To[0].ByEgressGateway.Name != "" {
				p.Spec.EgressRules[0].To[0].ByEgressGateway.Name = fixtureGateway().Name
			}
			objs, err := Translate(p, fixtureGateway())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if warn, err := istioValidate(t, o); err != nil || warn != nil {
					t.Errorf("%s %s: %v %v", o.GetKind(), o.GetName(), err, warn)
				}
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	if errs := Validate(nil); len(errs) != 1 {
		t.Fatalf("got %v", errs)
	}
}
