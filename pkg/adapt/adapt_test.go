package adapt

import (
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

func TestOriginationTrust(t *testing.T) {
	dr := obj(t, `
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: originate, namespace: istio-system}
spec:
  host: developers.google.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE}
    - port: {number: 8443}
      tls: {mode: SIMPLE, caCertificates: /etc/own.pem}
  subsets:
  - name: a
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`)
	out := OriginationTrust(dr)
	pls := out.Object["spec"].(map[string]any)["trafficPolicy"].(map[string]any)["portLevelSettings"].([]any)
	if got := pls[0].(map[string]any)["tls"].(map[string]any)["credentialName"]; got != OriginationCredential {
		t.Errorf("SIMPLE without CA: credentialName %v", got)
	}
	if got := pls[1].(map[string]any)["tls"].(map[string]any)["credentialName"]; got != nil {
		t.Errorf("SIMPLE with its own CA was changed: %v", got)
	}
	sub := out.Object["spec"].(map[string]any)["subsets"].([]any)[0].(map[string]any)["trafficPolicy"].(map[string]any)["tls"].(map[string]any)
	if sub["credentialName"] != nil {
		t.Errorf("ISTIO_MUTUAL was changed: %v", sub)
	}
	// The input is not modified.
	if pls0 := dr.Object["spec"].(map[string]any)["trafficPolicy"].(map[string]any)["portLevelSettings"].([]any)[0].(map[string]any)["tls"].(map[string]any); pls0["credentialName"] != nil {
		t.Error("input modified")
	}
	se := obj(t, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [a]}\n")
	if OriginationTrust(se) != se {
		t.Error("non-DestinationRule changed")
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
