package live

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/egressconf/egressconf/pkg/catalog"
)

// TestNamespaceLabels: a namespace the run creates carries the scenario's labels and, with
// injection: false, istio-injection=disabled; on a pre-existing namespace the labels are set and
// put back (a changed value restored, an added label removed) at teardown.
func TestNamespaceLabels(t *testing.T) {
	pre := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pre", Labels: map[string]string{"tier": "old", "keep": "k"}}}
	b := testBackend(t, nil, pre)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}, injection: map[string]*string{}}
	ctx := context.Background()
	off := false
	if err := b.ensureNamespace(ctx, catalog.Namespace{Name: "fresh", Injection: &off, Labels: map[string]string{"tier": "egress"}}); err != nil {
		t.Fatal(err)
	}
	// The run creates objects through the dynamic client.
	fresh, err := b.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, "fresh", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := fresh.GetLabels(); l["tier"] != "egress" || l["istio-injection"] != "disabled" {
		t.Errorf("created namespace labels %v, want tier=egress istio-injection=disabled", l)
	}
	if err := b.ensureNamespace(ctx, catalog.Namespace{Name: "pre", Labels: map[string]string{"tier": "egress", "zone": "a"}}); err != nil {
		t.Fatal(err)
	}
	ns, _ := b.cs.CoreV1().Namespaces().Get(ctx, "pre", metav1.GetOptions{})
	if ns.Labels["tier"] != "egress" || ns.Labels["zone"] != "a" || ns.Labels["keep"] != "k" {
		t.Errorf("pre-existing namespace labels %v, want tier=egress zone=a and keep=k kept", ns.Labels)
	}
	if err := b.restoreInjection(ctx, b.sc); err != nil {
		t.Fatal(err)
	}
	ns, _ = b.cs.CoreV1().Namespaces().Get(ctx, "pre", metav1.GetOptions{})
	if _, has := ns.Labels["zone"]; has || ns.Labels["tier"] != "old" || ns.Labels["keep"] != "k" {
		t.Errorf("after teardown: labels %v, want tier=old keep=k and no zone", ns.Labels)
	}
}
