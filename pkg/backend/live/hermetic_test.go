package live

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/pki"
	"github.com/egressconf/egressconf/pkg/standin"
)

var cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// originating is a DestinationRule of ns whose port 443 originates TLS with credentialName cred.
func originating(ns, name, cred string) *unstructured.Unstructured {
	dr := &unstructured.Unstructured{}
	dr.SetGroupVersionKind(drGVK)
	dr.SetNamespace(ns)
	dr.SetName(name)
	tls := map[string]any{"mode": "SIMPLE"}
	if cred != "" {
		tls["credentialName"] = cred
	}
	dr.Object["spec"] = map[string]any{"host": "developers.google.com", "trafficPolicy": map[string]any{
		"portLevelSettings": []any{map[string]any{"port": map[string]any{"number": int64(443)}, "tls": tls}}}}
	return dr
}

// TestOriginationCAPrecedesTheRule: a DestinationRule naming the stand-in CA ConfigMap of its
// namespace gets it, created by the run before the rule, once per namespace, deleted after it.
func TestOriginationCAPrecedesTheRule(t *testing.T) {
	b := testBackend(t, nil)
	b.standin = &standin.InCluster{RunID: "run-1", Certs: &pki.Bundle{CAPEM: []byte("-----BEGIN CERTIFICATE-----\n")}}
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}, injection: map[string]*string{}}
	ctx := context.Background()
	fake := b.dyn.(*dynamicfake.FakeDynamicClient)
	const ref = "configmap://istio-system/egressconf-standin-ca"
	objs := []*unstructured.Unstructured{originating("istio-system", "a", ref), originating("istio-system", "b", ref), originating("default", "plain", "")}
	if err := b.Apply(ctx, backend.Manifest{Key: "a.yaml", Objects: objs}); err != nil {
		t.Fatal(err)
	}
	var created []string
	for _, a := range fake.Actions() {
		if a.GetVerb() == "create" {
			created = append(created, a.GetResource().Resource+" "+a.GetNamespace())
		}
	}
	if got := strings.Join(created, ", "); got != "configmaps istio-system, destinationrules istio-system, destinationrules istio-system, destinationrules default" {
		t.Errorf("created %s; want the CA ConfigMap in istio-system (only), before the rules", got)
	}
	cm, err := fake.Resource(cmGVR).Namespace("istio-system").Get(ctx, standin.CACredentialName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _ := unstructured.NestedString(cm.Object, "data", "ca.crt"); d != "-----BEGIN CERTIFICATE-----\n" {
		t.Errorf("ca.crt %q", d)
	}
	fake.ClearActions()
	if err := b.Teardown(ctx, b.sc.s); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, a := range fake.Actions() {
		if a.GetVerb() == "delete" {
			deleted = append(deleted, a.GetResource().Resource)
		}
	}
	if got := strings.Join(deleted, ","); got != "destinationrules,destinationrules,destinationrules,configmaps" {
		t.Errorf("deleted %s; want the rules, then the CA ConfigMap", got)
	}
}

func TestOriginationCARefusals(t *testing.T) {
	ctx := context.Background()
	dr := originating("istio-system", "a", "configmap://istio-system/egressconf-standin-ca")
	// No stand-in (--internet live): the reference cannot be served.
	b := testBackend(t, nil)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	if err := b.Apply(ctx, backend.Manifest{Key: "a.yaml", Objects: []*unstructured.Unstructured{dr}}); err == nil || !strings.Contains(err.Error(), "DestinationRule istio-system/a names the stand-in CA") {
		t.Errorf("without a stand-in: %v", err)
	}
	// A ConfigMap of that name the run did not create is not overwritten.
	theirs := &unstructured.Unstructured{}
	theirs.SetAPIVersion("v1")
	theirs.SetKind("ConfigMap")
	theirs.SetNamespace("istio-system")
	theirs.SetName(standin.CACredentialName)
	b = testBackend(t, []runtime.Object{theirs})
	b.standin = &standin.InCluster{RunID: "run-1", Certs: &pki.Bundle{CAPEM: []byte("x")}}
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	var oe *OwnershipError
	if err := b.Apply(ctx, backend.Manifest{Key: "a.yaml", Objects: []*unstructured.Unstructured{dr}}); !errors.As(err, &oe) {
		t.Errorf("over a foreign ConfigMap: %v", err)
	}
}
