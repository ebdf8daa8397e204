package adapt

import (
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func tlsAt(t *testing.T, o *unstructured.Unstructured, path ...any) map[string]any {
	t.Helper()
	var cur any = o.Object
	for _, p := range path {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	return cur.(map[string]any)["tls"].(map[string]any)
}

func TestOriginationTrust(t *testing.T) {
	dr := obj(t, `
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: originate, namespace: istio-system}
spec:
  host: developers.google.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: developers.google.com}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE}
    - port: {number: 8443}
      tls: {mode: SIMPLE, caCertificates: /etc/own.pem}
    - port: {number: 9443}
      tls: {mode: SIMPLE, insecureSkipVerify: true}
    - port: {number: 10443}
      tls: {mode: SIMPLE, credentialName: theirs}
  subsets:
  - name: a
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  - name: b
    trafficPolicy: {tls: {mode: SIMPLE}}
  - name: c
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: SIMPLE}
`)
	out, err := OriginationTrust(dr)
	if err != nil {
		t.Fatal(err)
	}
	const want = "configmap://istio-system/egressconf-standin-ca"
	for _, path := range [][]any{
		{"spec", "trafficPolicy"},
		{"spec", "trafficPolicy", "portLevelSettings", 0},
		{"spec", "subsets", 1, "trafficPolicy"},
		{"spec", "subsets", 2, "trafficPolicy", "portLevelSettings", 0},
	} {
		if got := tlsAt(t, out, path...)["credentialName"]; got != want {
			t.Errorf("%v: credentialName %v, want %s", path, got, want)
		}
	}
	for _, path := range [][]any{
		{"spec", "trafficPolicy", "portLevelSettings", 1}, // its own CA
		{"spec", "trafficPolicy", "portLevelSettings", 2}, // verifies nothing: Istio refuses a CA with insecureSkipVerify
		{"spec", "subsets", 0, "trafficPolicy"},           // ISTIO_MUTUAL
	} {
		if got := tlsAt(t, out, path...)["credentialName"]; got != nil {
			t.Errorf("%v: changed: credentialName %v", path, got)
		}
	}
	if got := tlsAt(t, out, "spec", "trafficPolicy", "portLevelSettings", 3)["credentialName"]; got != "theirs" {
		t.Errorf("a credential of its own was replaced: %v", got)
	}
	if got := tlsAt(t, out, "spec", "trafficPolicy")["sni"]; got != "developers.google.com" {
		t.Errorf("sni changed: %v", got)
	}
	// The input is not modified.
	if got := tlsAt(t, dr, "spec", "trafficPolicy", "portLevelSettings", 0)["credentialName"]; got != nil {
		t.Error("input modified")
	}
	for _, s := range []string{
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x, namespace: a}\nspec: {hosts: [a]}\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x, namespace: a}\nspec: {host: a, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n",
		"apiVersion: example.com/v1\nkind: DestinationRule\nmetadata: {name: x, namespace: a}\nspec: {host: a, trafficPolicy: {tls: {mode: SIMPLE}}}\n",
	} {
		o := obj(t, s)
		if got, err := OriginationTrust(o); err != nil || got != o {
			t.Errorf("changed: %v %v", got, err)
		}
	}
}

func TestOriginationTrustRefusals(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x, namespace: a}\nspec: {host: a, subsets: [{name: s, trafficPolicy: {tls: {mode: SIMPLE, caCrl: /crl.pem}}}]}\n",
			"DestinationRule a/x: spec.subsets[0].trafficPolicy.tls.caCrl"},
		{"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: a, trafficPolicy: {tls: {mode: SIMPLE}}}\n",
			"DestinationRule /x: metadata.namespace: empty"},
	} {
		_, err := OriginationTrust(obj(t, tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestTranslateOnlyWhenAsked(t *testing.T) {
	p := obj(t, `
apiVersion: istio.alibabacloud.com/v1
kind: ASMEgressTrafficPolicy
metadata: {name: egress-by-egressgateway, namespace: istio-egress}
spec:
  byEgressGateway: {name: egressgateway-a}
  egressRules:
  - from: [{namespace: mytest, workloadSelector: {app: sleep-a}}]
    to:
    - name: httpbin-service-http
      hosts: [www.httpbin.org, httpbin.org]
      port: {name: http, number: 80, protocol: HTTP}
      byEgressGateway: {port: 80}
`)
	same, err := New(Options{})(p)
	if err != nil || len(same) != 1 || same[0] != p {
		t.Fatalf("untranslated: %v %v", same, err)
	}
	objs, err := New(Options{TranslateASM: true})(p)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"ServiceEntry", "Gateway", "DestinationRule", "VirtualService"} {
		if kinds[k] == 0 {
			t.Errorf("translation has no %s: %v", k, kinds)
		}
	}
}

// TestTranslateHermetic: the translation's TLS-originating rules name the run's CA in their own
// namespace, as any other rule's.
func TestTranslateHermetic(t *testing.T) {
	data, err := os.ReadFile("../asm/testdata/seed-https-upgrade.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := obj(t, strings.Replace(string(data), "name: egressgateway\n", "name: egressgateway-a\n", 1))
	for _, hermetic := range []bool{false, true} {
		objs, err := TranslateASM(p, hermetic)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range objs {
			if o.GetKind() != "DestinationRule" {
				continue
			}
			pls, _, _ := unstructured.NestedSlice(o.Object, "spec", "trafficPolicy", "portLevelSettings")
			for _, pl := range pls {
				tls, _ := pl.(map[string]any)["tls"].(map[string]any)
				if tls["mode"] != "SIMPLE" {
					continue
				}
				n++
				want := any(nil)
				if hermetic {
					want = "configmap://" + o.GetNamespace() + "/egressconf-standin-ca"
				}
				if tls["credentialName"] != want {
					t.Errorf("hermetic=%v: %s: credentialName %v, want %v", hermetic, o.GetName(), tls["credentialName"], want)
				}
			}
		}
		if n != 2 {
			t.Errorf("hermetic=%v: %d TLS-originating settings, want 2 (httpbin.org, www.httpbin.org)", hermetic, n)
		}
	}
}
