package live

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// carryBackend is a test backend that knows the fixtures' kinds.
func carryBackend(t *testing.T, pods ...*corev1.Pod) *Backend {
	t.Helper()
	b := testBackend(t, nil)
	m := b.mapper.(*meta.DefaultRESTMapper)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Service"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	// Deleting a Deployment deletes its pods, as the garbage collector would.
	b.dyn.(*dynamicfake.FakeDynamicClient).PrependReactor("delete", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		pods, _ := b.cs.CoreV1().Pods(d.GetNamespace()).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + d.GetName()})
		for _, p := range pods.Items {
			_ = b.cs.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{})
		}
		return false, nil, nil
	})
	for _, p := range pods {
		if _, err := b.cs.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func readyPod(ns, app, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app, fixtures.LabelRun: "run-1"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func carryScenario(group string, labels map[string]string, ws ...catalog.Workload) *catalog.Scenario {
	s := &catalog.Scenario{Metadata: catalog.Metadata{Name: group, Group: group}}
	s.Spec.Namespaces = []catalog.Namespace{{Name: "mytest", Labels: labels}}
	s.Spec.Workloads = ws
	return s
}

// setUp creates what Setup would have for s (its namespaces and starting fixtures, their pods
// named in pods) and applies a ServiceEntry, as a step would.
func setUp(t *testing.T, b *Backend, s *catalog.Scenario, pods map[string]string) {
	t.Helper()
	ctx := context.Background()
	b.sc = &scenarioState{s: s, injection: map[string]*string{}, workloads: map[string]*workloadState{}}
	kept, err := b.adopt(ctx, b.sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range scenarioNamespaces(s) {
		if err := b.createTracked(ctx, b.sc, fixtures.Namespace(ns, b.fixtureOptions())); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range s.Spec.Workloads {
		if st := kept[w.Ref()]; st != nil {
			b.sc.workloads[w.Ref()] = st
			continue
		}
		objs, err := fixtures.Workload(w, b.fixtureOptions())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := b.createTracked(ctx, b.sc, o); err != nil {
				t.Fatal(err)
			}
		}
		b.sc.workloads[w.Ref()] = &workloadState{w: w, pod: pods[w.Ref()]}
	}
	if err := b.Apply(ctx, backend.Manifest{Key: "se", Objects: []*unstructured.Unstructured{serviceEntry("mytest", "se-"+s.Metadata.Group, nil)}}); err != nil {
		t.Fatal(err)
	}
}

func deletes(b *Backend) []string {
	var out []string
	for _, a := range b.dyn.(*dynamicfake.FakeDynamicClient).Actions() {
		if d, ok := a.(interface{ GetName() string }); ok && a.GetVerb() == "delete" {
			out = append(out, a.GetResource().Resource+"/"+d.GetName())
		}
	}
	return out
}

func TestTeardownCarriesFixturesTheNextScenarioKeeps(t *testing.T) {
	sleep := catalog.Workload{Name: "sleep-a", Namespace: "mytest", Fixture: "sleep"}
	nginx := catalog.Workload{Name: "nginx", Namespace: "mytest", Fixture: "nginx"}
	b := carryBackend(t, readyPod("mytest", "sleep-a", "sleep-a-1"), readyPod("mytest", "nginx", "nginx-1"))
	ctx := context.Background()
	fake := b.dyn.(*dynamicfake.FakeDynamicClient)

	setUp(t, b, carryScenario("G2", nil, sleep, nginx), map[string]string{sleep.Ref(): "sleep-a-1", nginx.Ref(): "nginx-1"})
	fake.ClearActions()
	if err := b.Teardown(ctx, b.sc.s); err != nil {
		t.Fatal(err)
	}
	if got := deletes(b); !slices.Equal(got, []string{"serviceentries/se-G2"}) {
		t.Errorf("G2's teardown deleted %v, want only its ServiceEntry (namespace and fixtures carried)", got)
	}
	if b.carry == nil || len(b.carry.workloads) != 2 || len(b.carry.pending.istio) != 1 || !b.carry.pending.istio[0].deleted {
		t.Fatalf("carried %+v, want both fixtures and the ServiceEntry's deletion pending", b.carry)
	}

	// G3 wants sleep-a as it is, not nginx: nginx goes, and the next convergence waits for the
	// ServiceEntry G2's teardown deleted.
	fake.ClearActions()
	setUp(t, b, carryScenario("G3", nil, sleep), nil)
	for _, want := range []string{"deployments/nginx", "services/nginx"} {
		if !slices.Contains(deletes(b), want) {
			t.Errorf("G3's setup deleted %v, want %s among them", deletes(b), want)
		}
	}
	for _, kept := range []string{"deployments/sleep-a", "namespaces/mytest"} {
		if slices.Contains(deletes(b), kept) {
			t.Errorf("G3's setup deleted %s, which it keeps", kept)
		}
	}
	if st := b.sc.workloads[sleep.Ref()]; st == nil || st.pod != "sleep-a-1" {
		t.Errorf("sleep-a not kept with its pod: %+v", st)
	}
	if len(b.sc.pending.istio) != 2 { // G2's deletion and G3's apply
		t.Errorf("pending %+v, want G2's ServiceEntry deletion and G3's apply", b.sc.pending.istio)
	}

	// G4 labels the namespace differently: the namespace and its fixture start again.
	if err := b.Teardown(ctx, b.sc.s); err != nil {
		t.Fatal(err)
	}
	fake.ClearActions()
	b.sc = &scenarioState{s: carryScenario("G4", map[string]string{"team": "x"}, sleep), injection: map[string]*string{}, workloads: map[string]*workloadState{}}
	kept, err := b.adopt(ctx, b.sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 0 || !slices.Contains(deletes(b), "namespaces/mytest") {
		t.Errorf("kept %v, deleted %v: want nothing kept and mytest deleted", kept, deletes(b))
	}
	if !slices.Equal(b.terminating, []string{"mytest"}) {
		t.Errorf("terminating %v, want mytest (Close waits for it)", b.terminating)
	}
}

func TestAdoptStartsAgainAFixtureWhosePodChanged(t *testing.T) {
	sleep := catalog.Workload{Name: "sleep-a", Namespace: "mytest", Fixture: "sleep"}
	b := carryBackend(t, readyPod("mytest", "sleep-a", "sleep-a-2"))
	ctx := context.Background()
	setUp(t, b, carryScenario("G2", nil, sleep), map[string]string{sleep.Ref(): "sleep-a-1"})
	if err := b.Teardown(ctx, b.sc.s); err != nil {
		t.Fatal(err)
	}
	b.sc = &scenarioState{s: carryScenario("G3", nil, sleep), injection: map[string]*string{}, workloads: map[string]*workloadState{}}
	kept, err := b.adopt(ctx, b.sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 0 || !slices.Contains(deletes(b), "deployments/sleep-a") {
		t.Errorf("kept %v, deleted %v: the pod is no longer the one found ready, so the fixture starts again", kept, deletes(b))
	}
}

func TestCloseDeletesWhatIsCarried(t *testing.T) {
	sleep := catalog.Workload{Name: "sleep-a", Namespace: "mytest", Fixture: "sleep"}
	b := carryBackend(t, readyPod("mytest", "sleep-a", "sleep-a-1"))
	ctx := context.Background()
	setUp(t, b, carryScenario("G2", nil, sleep), map[string]string{sleep.Ref(): "sleep-a-1"})
	if err := b.Teardown(ctx, b.sc.s); err != nil {
		t.Fatal(err)
	}
	b.dyn.(*dynamicfake.FakeDynamicClient).ClearActions()
	if err := b.dropAllCarried(ctx); err != nil {
		t.Fatal(err)
	}
	got := deletes(b)
	for _, want := range []string{"deployments/sleep-a", "namespaces/mytest"} {
		if !slices.Contains(got, want) {
			t.Errorf("Close deleted %v, want %s among them", got, want)
		}
	}
	if b.carry != nil {
		t.Error("still carried after Close")
	}
}
