package asm

import (
	"encoding/json"
	"testing"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/collections"
)

// istioValidate runs Istio's own validation (the one istiod's webhook applies) on a generated
// object: the spec is decoded strictly into the Istio API type and the schema's ValidateConfig is
// called. Warnings are returned separately.
func istioValidate(t *testing.T, o *unstructured.Unstructured) (warnings error, err error) {
	t.Helper()
	gvk := config.FromKubernetesGVK(o.GroupVersionKind())
	s, ok := collections.Pilot.FindByGroupVersionAliasesKind(gvk)
	if !ok {
		t.Fatalf("%s %s: Istio has no schema for %v", o.GetKind(), o.GetName(), gvk)
	}
	spec, err := s.NewInstance()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(o.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := config.ApplyJSONStrict(spec, string(js)); err != nil {
		return nil, err
	}
	cfg := config.Config{
		Meta: config.Meta{
			GroupVersionKind: s.GroupVersionKind(),
			Name:             o.GetName(),
			Namespace:        o.GetNamespace(),
			Labels:           o.GetLabels(),
			Annotations:      o.GetAnnotations(),
			Domain:           "cluster.local",
		},
		Spec: spec,
	}
	return s.ValidateConfig(cfg)
}

// Every object of every golden translation passes Istio's validation, without warnings, and has
// valid Kubernetes metadata.
func TestTranslationsPassIstioValidation(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.golden, func(t *testing.T) {
			for _, o := range translate(t, loadPolicy(t, tc.policy), tc.opts) {
				warn, err := istioValidate(t, o)
				if err != nil {
					t.Errorf("%s %s: Istio rejects it: %v", o.GetKind(), o.GetName(), err)
				}
				if warn != nil {
					t.Errorf("%s %s: Istio warns: %v", o.GetKind(), o.GetName(), warn)
				}
				var meta metav1.ObjectMeta
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(
					o.Object["metadata"].(map[string]any), &meta); err != nil {
					t.Fatal(err)
				}
				nameFn := apimachineryvalidation.NameIsDNSSubdomain
				if o.GetKind() == KindGateway {
					nameFn = apimachineryvalidation.NameIsDNSLabel // Istio's rule for Gateway names
				}
				if errs := apimachineryvalidation.ValidateObjectMeta(&meta, true, nameFn, nil); len(errs) > 0 {
					t.Errorf("%s %s: metadata: %v", o.GetKind(), o.GetName(), errs.ToAggregate())
				}
			}
		})
	}
}

// The check itself works: Istio refuses what it should.
func TestIstioValidationCatchesMistakes(t *testing.T) {
	objs := translate(t, loadPolicy(t, "seed-https-passthrough.yaml"), TranslateOptions{})
	mesh := find(t, objs, KindVirtualService, "egress-by-egressgateway-httpbin-service-https-mesh").DeepCopy()
	// A TLS match without SNI hosts is invalid for Istio.
	tls, _, _ := unstructured.NestedSlice(mesh.Object, "spec", "tls")
	delete(tls[0].(map[string]any)["match"].([]any)[0].(map[string]any), "sniHosts")
	if err := unstructured.SetNestedSlice(mesh.Object, tls, "spec", "tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := istioValidate(t, mesh); err == nil {
		t.Error("Istio accepted a TLS match without sniHosts")
	}

	gw := find(t, objs, KindGateway, "egress-by-egressgateway").DeepCopy()
	if err := unstructured.SetNestedField(gw.Object, "bogus", "spec", "servers1"); err != nil {
		t.Fatal(err)
	}
	if _, err := istioValidate(t, gw); err == nil {
		t.Error("strict decoding accepted an unknown field")
	}
}
