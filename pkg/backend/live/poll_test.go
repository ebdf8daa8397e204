package live

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func terminating(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
}

// b.poll's bound: the teardown timeout, named in the error with what is left.
func TestWaitNamespacesGoneTimeout(t *testing.T) {
	b := testBackend(t, nil, terminating("ns-a"))
	err := b.waitNamespacesGone(context.Background(), []string{"ns-a", "ns-b"})
	if err == nil || err.Error() != "namespaces still terminating (ns-a): not after 2s" {
		t.Fatalf("got %v", err)
	}
	if err := b.waitNamespacesGone(context.Background(), []string{"ns-b"}); err != nil {
		t.Fatal(err)
	}
}

func TestWaitNamespacesGoneCancelled(t *testing.T) {
	b := testBackend(t, nil, terminating("ns-a"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.waitNamespacesGone(ctx, []string{"ns-a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// An error reading a namespace stops the wait at once with that error.
func TestWaitNamespacesGoneError(t *testing.T) {
	b := testBackend(t, nil, terminating("ns-a"))
	b.cs.(*k8sfake.Clientset).PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	err := b.waitNamespacesGone(context.Background(), []string{"ns-a"})
	if err == nil || err.Error() != "namespaces still terminating (): forbidden" {
		t.Fatalf("got %v", err)
	}
}
