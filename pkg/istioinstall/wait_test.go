package istioinstall

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The waits name what they waited for, its last state and the bound that passed.
func TestWaitDeploymentTimeoutSaysStateAndBound(t *testing.T) {
	two := int32(2)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "istiod", Generation: 1},
		Spec:   appsv1.DeploymentSpec{Replicas: &two},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, AvailableReplicas: 1, UpdatedReplicas: 2}}
	err := WaitDeployment(context.Background(), fake.NewSimpleClientset(d), Namespace, "istiod", 700*time.Millisecond)
	if err == nil || err.Error() != "deployment istio-system/istiod not ready (1/2 available, 2 updated): not after 700ms" {
		t.Fatalf("got %v", err)
	}
	// Ready: no error, at the first look.
	d.Status.AvailableReplicas = 2
	if err := WaitDeployment(context.Background(), fake.NewSimpleClientset(d), Namespace, "istiod", time.Hour); err != nil {
		t.Fatal(err)
	}
	// Missing: the API's error is the state.
	err = WaitDeployment(context.Background(), fake.NewSimpleClientset(), Namespace, "istiod", 700*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `deployments.apps "istiod" not found`) || !strings.HasSuffix(err.Error(), "not after 700ms") {
		t.Fatalf("got %v", err)
	}
}

func TestWaitDeploymentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WaitDeployment(ctx, fake.NewSimpleClientset(), Namespace, "istiod", time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestWaitInjectorTimeoutNamesTheWebhook(t *testing.T) {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector", Labels: map[string]string{"app": "sidecar-injector"}},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "namespace.sidecar-injector.istio.io"}}}
	err := waitInjector(context.Background(), fake.NewSimpleClientset(m), 700*time.Millisecond)
	if err == nil || err.Error() != "sidecar injector not serving (webhook namespace.sidecar-injector.istio.io of istio-sidecar-injector has no CA bundle yet): not after 700ms" {
		t.Fatalf("got %v", err)
	}
}
