package xdsprobe

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/egressconf/egressconf/pkg/outcome"
)

// TestMeshServiceIsOutOfModel: a request to a Service of the cluster (an in-mesh httpbin) is out
// of model for the control-plane probe, never answered as an external host; a name that is no
// Service is not a mesh workload.
func TestMeshServiceIsOutOfModel(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "httpbin", Namespace: "demo"}}
	w := &world{p: New(k8sfake.NewClientset(svc), "unused:0", nil), ctx: context.Background()}
	_, ok, err := w.Service("httpbin.demo.svc.cluster.local", 8000)
	var oom *outcome.OutOfModelError
	if !ok || !errors.As(err, &oom) {
		t.Errorf("existing Service: ok=%v err=%v, want a mesh workload out of model", ok, err)
	}
	if _, ok, err := w.Service("nope.demo.svc.cluster.local", 8000); ok || err != nil {
		t.Errorf("missing Service: ok=%v err=%v, want not a mesh workload", ok, err)
	}
	if _, ok, err := w.Service("www.aliyun.com", 80); ok || err != nil {
		t.Errorf("external host: ok=%v err=%v", ok, err)
	}
}
