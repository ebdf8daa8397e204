package asm

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestParseSeeds(t *testing.T) {
	p, err := Parse(readTestdata(t, "seed-https-upgrade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{}
	want.APIVersion, want.Kind = "istio.alibabacloud.com/v1", "ASMEgressTrafficPolicy"
	want.Name, want.Namespace = "egress-by-egressgateway", "istio-egress"
	want.Spec = Spec{
		ByEgressGateway: &ByEgressGateway{Name: "egressgateway"},
		EgressRules: []EgressRule{{
			From: []From{{Namespace: "mytest", WorkloadSelector: map[string]string{"app": "sleep-a"}}},
			To: []To{{
				Name:            "httpbin-service-http",
				Hosts:           []string{"www.httpbin.org", "httpbin.org"},
				Port:            &Port{Name: "http", Number: 80, Protocol: "HTTP"},
				ByEgressGateway: &ByEgressGateway{Port: Int32(80)},
				HTTPSUpgrade:    &HTTPSUpgrade{Enabled: true, Port: 443},
			}},
		}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %#v\nwant %#v", p, want)
	}

	tcp, err := Parse(readTestdata(t, "seed-tcp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := tcp.Spec.EgressRules[0].To[0].ByEgressGateway
	if b == nil || b.Port != nil || b.Name != "" {
		t.Errorf("byEgressGateway: {} parsed as %#v", b)
	}

	for older, newer := range olderSeeds {
		a, err := Parse(readTestdata(t, older))
		if err != nil {
			t.Fatalf("%s: %v", older, err)
		}
		b, err := Parse(readTestdata(t, newer))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s and %s parse differently", older, newer)
		}
	}
}

func TestParseV1beta1ConvertsToV1(t *testing.T) {
	v1 := readTestdata(t, "seed-tcp.yaml")
	v1beta1 := []byte(strings.Replace(string(v1), "istio.alibabacloud.com/v1\n", "istio.alibabacloud.com/v1beta1\n", 1))
	a, err := Parse(v1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(v1beta1)
	if err != nil {
		t.Fatal(err)
	}
	if b.APIVersion != "istio.alibabacloud.com/v1" {
		t.Errorf("apiVersion after conversion: %s", b.APIVersion)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("v1beta1 converts to\n%#v\nwant\n%#v", b, a)
	}
	// And back.
	back := a.ToV1beta1()
	if back.APIVersion != "istio.alibabacloud.com/v1beta1" || !reflect.DeepEqual(back.ToV1(), a) {
		t.Errorf("round trip through v1beta1 changed the policy")
	}
	// No shared memory.
	back.Spec.EgressRules[0].To[0].Hosts[0] = "changed.example.com"
	if a.Spec.EgressRules[0].To[0].Hosts[0] == "changed.example.com" {
		t.Error("ToV1beta1 shares memory with its input")
	}
}

func TestParseIsStrict(t *testing.T) {
	seed := string(readTestdata(t, "seed-http.yaml"))
	cases := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown field in a to entry", strings.Replace(seed, "      hosts:\n", "      hostz: [x]\n      hosts:\n", 1),
			[]string{`unknown field "spec.egressRules[0].to[0].hostz"`}},
		{"misspelt workloadSelector", strings.Replace(seed, "workloadSelector:", "workloadselector:", 1),
			[]string{`unknown field "spec.egressRules[0].from[0].workloadselector"`}},
		{"unknown field in spec.byEgressGateway", strings.Replace(seed, "    name: egressgateway\n", "    name: egressgateway\n    namespace: istio-egress\n", 1),
			[]string{`unknown field "spec.byEgressGateway.namespace"`}},
		{"unknown field in httpsUpgrade", strings.Replace(string(readTestdata(t, "seed-https-upgrade.yaml")), "        enabled: true", "        enable: true", 1),
			[]string{`unknown field "spec.egressRules[0].to[0].httpsUpgrade.enable"`}},
		{"unknown top-level field", seed + "extra: 1\n", []string{`unknown field "extra"`}},
		{"duplicate field", strings.Replace(seed, "        number: 80\n", "        number: 80\n        number: 81\n", 1),
			[]string{`duplicate field "spec.egressRules[0].to[0].port.number" (line 24)`}},
		{"wrong type", strings.Replace(seed, "        number: 80\n", "        number: eighty\n", 1),
			[]string{"spec.egressRules.to.port.number"}},
		{"wrong kind", strings.Replace(seed, "kind: ASMEgressTrafficPolicy", "kind: EgressPolicy", 1),
			[]string{"kind: Unsupported value", "EgressPolicy"}},
		{"missing kind", strings.Replace(seed, "kind: ASMEgressTrafficPolicy\n", "", 1),
			[]string{"kind: Required value"}},
		{"wrong apiVersion", strings.Replace(seed, "istio.alibabacloud.com/v1", "istio.alibabacloud.com/v2", 1),
			[]string{"apiVersion: Unsupported value", "v2"}},
		{"two documents", seed + "---\n" + seed, []string{"found 2 YAML documents"}},
		{"empty", "# nothing\n---\n", []string{"empty document"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseAcceptsStatusAndMetadata(t *testing.T) {
	// A policy read back from an ASM cluster: server-set metadata and the controller's status.
	doc := string(readTestdata(t, "seed-tcp.yaml")) + `status:
  status: Succeed
  autoAllocatedGatewayPorts:
    www.alibabacloud.com-443: 10001
`
	doc = strings.Replace(doc, "  namespace: istio-egress\n", "  namespace: istio-egress\n  uid: 3f1c2d4e-0000-4000-8000-000000000000\n  resourceVersion: \"42\"\n  labels:\n    team: a\n", 1)
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.AutoAllocatedGatewayPorts["www.alibabacloud.com-443"] != 10001 || p.Labels["team"] != "a" {
		t.Errorf("status or metadata lost: %#v %#v", p.Status, p.ObjectMeta)
	}
	// What ASM reports is what AllocateGatewayPorts computes.
	alloc, err := AllocateGatewayPorts(p)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.Status.AutoAllocatedGatewayPorts {
		if alloc[k] != int32(v) {
			t.Errorf("%s: ASM %d, egressconf %d", k, v, alloc[k])
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, name := range []string{"seed-http.yaml", "seed-https-upgrade.yaml", "seed-https-passthrough.yaml", "seed-tcp.yaml", "multi-rule.yaml"} {
		p, err := Parse(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: re-parse: %v\n%s", name, err, b)
		}
		if !reflect.DeepEqual(p, q) {
			t.Errorf("%s: round trip changed the policy", name)
		}
		u, err := ToUnstructured(p)
		if err != nil {
			t.Fatal(err)
		}
		if u.GetAPIVersion() != "istio.alibabacloud.com/v1" || u.GetKind() != Kind || u.GetNamespace() != "istio-egress" {
			t.Errorf("%s: unstructured %v", name, u.Object)
		}
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s: empty status kept", name)
		}
		y, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(y); err != nil {
			t.Errorf("%s: unstructured form does not re-parse: %v", name, err)
		}
	}
}
