package live

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/egressconf/egressconf/deploy/rbac"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// refuse is a reactor answering as an API server whose authorizer refuses the action.
func refuse(a k8stesting.Action) (bool, runtime.Object, error) {
	res := a.GetResource().Resource
	if a.GetSubresource() != "" {
		res += "/" + a.GetSubresource()
	}
	q := rbac.Request{Verb: a.GetVerb(), Group: a.GetResource().Group, Resource: res, Namespace: a.GetNamespace()}
	if n, ok := a.(interface{ GetName() string }); ok {
		q.Name = n.GetName()
		if res == "namespaces" {
			q.Namespace = q.Name // as the API server's authorizer names a Namespace object
		}
	}
	return true, nil, rbac.APIServerRefusal("system:serviceaccount:egressconf:egressconf", q)
}

func wantDenied(t *testing.T, err error, want string) {
	t.Helper()
	var d *rbac.Denied
	if !errors.As(err, &d) || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\nwant a *rbac.Denied saying %q", err, want)
	}
}

func TestRefusalsNameVerbResourceAndRoleFile(t *testing.T) {
	ctx := context.Background()

	// The mesh config change in istio-system.
	b := testBackend(t, nil, meshCM(meshWithComments, nil))
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	b.cs.(*k8sfake.Clientset).PrependReactor("update", "configmaps", refuse)
	wantDenied(t, b.SetMeshPolicy(ctx, RegistryOnly),
		"permission denied: update configmaps in namespace istio-system (deploy/rbac/egressconf-istio-system.yaml)")

	// A scenario's Istio object (dynamic client).
	b = testBackend(t, nil)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	b.dyn.(*dynamicfake.FakeDynamicClient).PrependReactor("create", "serviceentries", refuse)
	err := b.Apply(ctx, backend.Manifest{Key: "se.yaml", Objects: []*unstructured.Unstructured{serviceEntry("istio-system", "se", nil)}})
	wantDenied(t, err, "permission denied: create serviceentries.networking.istio.io in namespace istio-system (deploy/rbac/egressconf-run.yaml)")

	// Teardown's delete of what the run applied.
	b = testBackend(t, nil)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	if err := b.Apply(ctx, backend.Manifest{Key: "se.yaml", Objects: []*unstructured.Unstructured{serviceEntry("default", "se", nil)}}); err != nil {
		t.Fatal(err)
	}
	b.dyn.(*dynamicfake.FakeDynamicClient).PrependReactor("delete", "serviceentries", refuse)
	wantDenied(t, b.Teardown(ctx, b.sc.s), "permission denied: delete serviceentries.networking.istio.io in namespace default (deploy/rbac/egressconf-run.yaml)")

	// An existing namespace's injection label: cluster-scoped.
	b = testBackend(t, nil, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	b.cs.(*k8sfake.Clientset).PrependReactor("patch", "namespaces", refuse)
	s := scenario()
	s.Spec.Namespaces = []catalog.Namespace{{Name: "default"}}
	wantDenied(t, b.Setup(ctx, s), "permission denied: patch namespaces default (cluster scope) (deploy/rbac/egressconf-run.yaml)")

	// Other errors are left as they are: the refusal to overwrite an object of another owner.
	b = testBackend(t, []runtime.Object{serviceEntry("default", "x", map[string]string{"team": "payments"})})
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	err = b.Apply(ctx, backend.Manifest{Key: "x", Objects: []*unstructured.Unstructured{serviceEntry("default", "x", nil)}})
	var oe *OwnershipError
	var d *rbac.Denied
	if !errors.As(err, &oe) || errors.As(err, &d) {
		t.Errorf("Apply over a foreign object: %v; want the OwnershipError as it is", err)
	}
}
