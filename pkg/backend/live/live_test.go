package live

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/runner"
)

var (
	seGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "ServiceEntry"}
	drGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
	nsGVK = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
)

func fastTimeouts() runner.Timeouts {
	t := runner.DefaultTimeouts()
	t.Poll, t.Teardown, t.Setup = time.Millisecond, 2*time.Second, 2*time.Second
	return t
}

// testBackend is a backend over fake clients: a dynamic one for createOwned/deleteOwned and a typed
// one for ConfigMaps and namespaces (they do not share state).
func testBackend(t *testing.T, dynObjs []runtime.Object, typed ...runtime.Object) *Backend {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{
		{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}:   "ServiceEntryList",
		{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}: "DestinationRuleList",
		{Version: "v1", Resource: "namespaces"}:                                     "NamespaceList",
		{Version: "v1", Resource: "configmaps"}:                                     "ConfigMapList",
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...)
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(seGVK, meta.RESTScopeNamespace)
	mapper.Add(drGVK, meta.RESTScopeNamespace)
	mapper.Add(nsGVK, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	cs := k8sfake.NewSimpleClientset(typed...)
	return &Backend{
		o:  Options{Name: "existing", RunID: "run-1", Timeouts: fastTimeouts(), Progress: io.Discard},
		cs: cs, dyn: dyn, istio: istiofake.NewSimpleClientset(), mapper: mapper, disc: memory.NewMemCacheClient(cs.Discovery()),
		gateways: map[string]*gatewayState{},
		info:     backend.Info{Name: "existing", Oracle: backend.OracleLiveDataPlane},
	}
}

func serviceEntry(ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(seGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	_ = unstructured.SetNestedStringSlice(u.Object, []string{"www.aliyun.com"}, "spec", "hosts")
	return u
}

func scenario() *catalog.Scenario {
	return &catalog.Scenario{Metadata: catalog.Metadata{Name: "t", Group: "G0"}}
}

func TestApplyRefusesAnObjectItDidNotCreate(t *testing.T) {
	foreign := serviceEntry("istio-system", "aliyuncom-ext", map[string]string{"team": "payments"})
	b := testBackend(t, []runtime.Object{foreign})
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	err := b.Apply(context.Background(), backend.Manifest{Key: "se.yaml", Objects: []*unstructured.Unstructured{serviceEntry("istio-system", "aliyuncom-ext", nil)}})
	var oe *OwnershipError
	if !errors.As(err, &oe) {
		t.Fatalf("Apply over a foreign object: got %v, want an OwnershipError", err)
	}
	if want := "ServiceEntry istio-system/aliyuncom-ext"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	// The foreign object is untouched.
	cur, _ := b.dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}).Namespace("istio-system").Get(context.Background(), "aliyuncom-ext", metav1.GetOptions{})
	if cur.GetLabels()["team"] != "payments" || cur.GetLabels()[fixtures.LabelRun] != "" {
		t.Errorf("foreign object changed: labels %v", cur.GetLabels())
	}

	// Another run's object is refused too, naming that run.
	other := serviceEntry("default", "x", map[string]string{fixtures.LabelManagedBy: fixtures.ManagedBy, fixtures.LabelRun: "run-0"})
	b = testBackend(t, []runtime.Object{other})
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	err = b.Apply(context.Background(), backend.Manifest{Key: "x", Objects: []*unstructured.Unstructured{serviceEntry("default", "x", nil)}})
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), `"run-0"`) {
		t.Errorf("Apply over another run's object: %v", err)
	}
}

func TestApplyLabelsTracksAndUpdatesItsOwn(t *testing.T) {
	b := testBackend(t, nil)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	ctx := context.Background()
	se := serviceEntry("default", "se", nil)
	if err := b.Apply(ctx, backend.Manifest{Key: "se.yaml", Objects: []*unstructured.Unstructured{se}}); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	cur, err := b.dyn.Resource(gvr).Namespace("default").Get(ctx, "se", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := cur.GetLabels(); l[fixtures.LabelManagedBy] != fixtures.ManagedBy || l[fixtures.LabelRun] != "run-1" {
		t.Errorf("labels %v", l)
	}
	if len(b.sc.created) != 1 || len(b.sc.pending.istio) != 1 {
		t.Fatalf("tracked %v, pending %v", b.sc.created, b.sc.pending.istio)
	}
	// The caller's object is not modified.
	if se.GetLabels() != nil {
		t.Errorf("Apply changed its input: %v", se.GetLabels())
	}
	// Applying again updates (no refusal: it is ours) and does not track twice.
	_ = unstructured.SetNestedStringSlice(se.Object, []string{"www.aliyun.com", "aliyun.com"}, "spec", "hosts")
	if err := b.Apply(ctx, backend.Manifest{Key: "se.yaml", Objects: []*unstructured.Unstructured{se}}); err != nil {
		t.Fatal(err)
	}
	cur, _ = b.dyn.Resource(gvr).Namespace("default").Get(ctx, "se", metav1.GetOptions{})
	if hosts, _, _ := unstructured.NestedStringSlice(cur.Object, "spec", "hosts"); len(hosts) != 2 {
		t.Errorf("not updated: hosts %v", hosts)
	}
	if len(b.sc.created) != 1 {
		t.Errorf("tracked twice: %v", b.sc.created)
	}
}

// TestLaterFileUpdatesAnObjectAndDeletesAreKubectls: a later file's copy of an object an earlier
// file of the run created updates it (labels kept); deleting the earlier file deletes it; deleting
// the later file then is not an error, but deleting a file twice still is (docs/catalog.md,
// "Applying and deleting"; the offline backend does the same).
func TestLaterFileUpdatesAnObjectAndDeletesAreKubectls(t *testing.T) {
	b := testBackend(t, nil)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}, injection: map[string]*string{}}
	ctx := context.Background()
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	first := backend.Manifest{Key: "a.yaml", Objects: []*unstructured.Unstructured{serviceEntry("default", "se", nil)}}
	updated := serviceEntry("default", "se", nil)
	_ = unstructured.SetNestedStringSlice(updated.Object, []string{"www.alibabacloud.com"}, "spec", "hosts")
	second := backend.Manifest{Key: "b.yaml", Objects: []*unstructured.Unstructured{updated}}
	for _, m := range []backend.Manifest{first, second} {
		if err := b.Apply(ctx, m); err != nil {
			t.Fatalf("apply %s: %v", m.Key, err)
		}
	}
	cur, err := b.dyn.Resource(gvr).Namespace("default").Get(ctx, "se", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hosts, _, _ := unstructured.NestedStringSlice(cur.Object, "spec", "hosts"); len(hosts) != 1 || hosts[0] != "www.alibabacloud.com" {
		t.Errorf("hosts %v, want the later file's", hosts)
	}
	if l := cur.GetLabels(); l[fixtures.LabelManagedBy] != fixtures.ManagedBy || l[fixtures.LabelRun] != "run-1" {
		t.Errorf("labels %v", l)
	}
	if len(b.sc.created) != 1 {
		t.Errorf("tracked %v", b.sc.created)
	}
	if err := b.Delete(ctx, first); err != nil {
		t.Fatalf("delete a.yaml: %v", err)
	}
	if _, err := b.dyn.Resource(gvr).Namespace("default").Get(ctx, "se", metav1.GetOptions{}); err == nil {
		t.Error("the object is still there after a.yaml's delete")
	}
	if err := b.Delete(ctx, second); err != nil {
		t.Errorf("delete b.yaml, whose object a.yaml's delete deleted: %v", err)
	}
	if err := b.Delete(ctx, first); err == nil || !strings.Contains(err.Error(), "was not applied") {
		t.Errorf("a second delete of a.yaml: %v, want an error", err)
	}
	if len(b.sc.created) != 0 {
		t.Errorf("still tracked: %v", b.sc.created)
	}
}

func TestDeleteRefusesForeignAndTeardownDeletesInReverse(t *testing.T) {
	foreign := serviceEntry("default", "theirs", nil)
	b := testBackend(t, []runtime.Object{foreign})
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}, injection: map[string]*string{}}
	ctx := context.Background()
	err := b.Delete(ctx, backend.Manifest{Key: "theirs", Objects: []*unstructured.Unstructured{serviceEntry("default", "theirs", nil)}})
	var oe *OwnershipError
	if !errors.As(err, &oe) {
		t.Fatalf("Delete of a foreign object: %v", err)
	}
	dr := &unstructured.Unstructured{}
	dr.SetGroupVersionKind(drGVK)
	dr.SetNamespace("default")
	dr.SetName("dr")
	if err := b.Apply(ctx, backend.Manifest{Key: "a", Objects: []*unstructured.Unstructured{serviceEntry("default", "mine", nil), dr}}); err != nil {
		t.Fatal(err)
	}
	fake := b.dyn.(*dynamicfake.FakeDynamicClient)
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
	if strings.Join(deleted, ",") != "destinationrules,serviceentries" {
		t.Errorf("deleted %v, want the DestinationRule then the ServiceEntry (reverse order)", deleted)
	}
	if _, err := fake.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}).Namespace("default").Get(ctx, "theirs", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign object deleted: %v", err)
	}
	if b.sc != nil {
		t.Error("scenario still set up after teardown")
	}
}

const meshWithComments = `# mesh config written by Helm
accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
rootNamespace: istio-system
`

func meshCM(data string, annotations map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMap, Namespace: IstioNamespace, Annotations: annotations},
		Data:       map[string]string{MeshKey: data},
	}
}

func TestMeshPolicySetAndRestoredByteForByte(t *testing.T) {
	b := testBackend(t, nil, meshCM(meshWithComments, nil))
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}}
	ctx := context.Background()
	if err := b.SetMeshPolicy(ctx, RegistryOnly); err != nil {
		t.Fatal(err)
	}
	cm, _ := b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{})
	if mode, _ := outboundMode(cm.Data[MeshKey]); mode != RegistryOnly {
		t.Errorf("mode %s after SetMeshPolicy; mesh:\n%s", mode, cm.Data[MeshKey])
	}
	if !strings.Contains(cm.Data[MeshKey], "rootNamespace: istio-system") || !strings.Contains(cm.Data[MeshKey], "# mesh config written by Helm") {
		t.Errorf("rest of the mesh config lost:\n%s", cm.Data[MeshKey])
	}
	if cm.Annotations[AnnotationOriginalMesh] != meshWithComments || cm.Annotations[AnnotationMeshRun] != "run-1" {
		t.Errorf("annotations %v", cm.Annotations)
	}
	if b.sc.pending.mesh != RegistryOnly {
		t.Errorf("pending mesh %q", b.sc.pending.mesh)
	}
	if err := b.SetMeshPolicy(ctx, AllowAny); err != nil {
		t.Fatal(err)
	}
	if err := b.restoreMesh(ctx); err != nil {
		t.Fatal(err)
	}
	cm, _ = b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{})
	if cm.Data[MeshKey] != meshWithComments {
		t.Errorf("restored mesh differs:\n%q\nwant\n%q", cm.Data[MeshKey], meshWithComments)
	}
	if len(cm.Annotations) != 0 {
		t.Errorf("annotations left: %v", cm.Annotations)
	}
	// Setting the mode already in force changes nothing.
	if err := b.SetMeshPolicy(ctx, AllowAny); err != nil {
		t.Fatal(err)
	}
	if b.mesh.original != nil {
		t.Error("a no-op SetMeshPolicy recorded a change")
	}
}

func TestMeshPolicyRefusesAnotherRunsChange(t *testing.T) {
	b := testBackend(t, nil, meshCM(meshWithComments, map[string]string{AnnotationMeshRun: "run-0", AnnotationOriginalMesh: "x"}))
	err := b.SetMeshPolicy(context.Background(), RegistryOnly)
	if err == nil || !strings.Contains(err.Error(), `"run-0"`) {
		t.Errorf("got %v, want a refusal naming run-0", err)
	}
}

func TestSetOutboundMode(t *testing.T) {
	for _, tc := range []struct{ in, mode, want string }{
		{"", RegistryOnly, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
		{"outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n", AllowAny, "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"},
		{"outboundTrafficPolicy: {}\n", RegistryOnly, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
		{"a: 1\n", AllowAny, "a: 1\n"}, // absent means ALLOW_ANY: unchanged
	} {
		got, err := setOutboundMode(tc.in, tc.mode)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("setOutboundMode(%q, %s) = %q, want %q", tc.in, tc.mode, got, tc.want)
		}
	}
}

func TestMeshDebugMode(t *testing.T) {
	for in, want := range map[string]string{
		`{"outboundTrafficPolicy":{}}`:                   RegistryOnly,
		`{"outboundTrafficPolicy":{"mode":"ALLOW_ANY"}}`: AllowAny,
		`{"rootNamespace":"istio-system"}`:               RegistryOnly,
	} {
		if got, err := meshDebugMode([]byte(in)); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
}

func TestNamespaceInjectionLabelRestored(t *testing.T) {
	def := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}}}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-egress", Labels: map[string]string{"istio-injection": "disabled"}}}
	b := testBackend(t, nil, def, other)
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{}, injection: map[string]*string{}}
	ctx := context.Background()
	for _, n := range []string{"default", "istio-egress"} {
		if err := b.ensureNamespace(ctx, catalog.Namespace{Name: n}); err != nil {
			t.Fatal(err)
		}
		ns, _ := b.cs.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		if ns.Labels["istio-injection"] != "enabled" {
			t.Errorf("%s: labels %v", n, ns.Labels)
		}
	}
	if len(b.sc.created) != 0 {
		t.Errorf("pre-existing namespaces tracked as created: %v", b.sc.created)
	}
	if err := b.restoreInjection(ctx, b.sc); err != nil {
		t.Fatal(err)
	}
	ns, _ := b.cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if _, has := ns.Labels["istio-injection"]; has || ns.Labels["kubernetes.io/metadata.name"] != "default" {
		t.Errorf("default not restored: %v", ns.Labels)
	}
	ns, _ = b.cs.CoreV1().Namespaces().Get(ctx, "istio-egress", metav1.GetOptions{})
	if ns.Labels["istio-injection"] != "disabled" {
		t.Errorf("istio-egress not restored: %v", ns.Labels)
	}
}

func TestUnobservable(t *testing.T) {
	b := testBackend(t, nil)
	no := false
	bypass := catalog.Workload{Name: "sleep-bypass", Namespace: "demo-frontend", Fixture: "sleep", Sidecar: &no}
	sleep := catalog.Workload{Name: "sleep", Namespace: "demo-frontend", Fixture: "sleep"}
	gw := fixtures.GatewayWorkload(fixtures.Gateways["istio-egressgateway"])
	if got := b.Unobservable(sleep); got != "" {
		t.Errorf("no scenario: %q", got)
	}
	b.gateways["istio-egressgateway"] = &gatewayState{gw: fixtures.Gateways["istio-egressgateway"], present: true, noEnvoy: "the istio-proxy container of pod istio-system/gw runs no Envoy"}
	b.sc = &scenarioState{s: scenario(), workloads: map[string]*workloadState{
		sleep.Ref():  {w: sleep, noEnvoy: "the istio-proxy container of pod demo-frontend/sleep-1 runs no Envoy"},
		bypass.Ref(): {w: bypass},
	}, noEnvoyGateways: []string{"istio-egressgateway@istio-system"}}
	if got := b.Unobservable(bypass); got != "" {
		t.Errorf("a workload without a sidecar is observable, got %q", got)
	}
	if got := b.Unobservable(sleep); !strings.Contains(got, "runs no Envoy") {
		t.Errorf("stub sidecar: %q", got)
	}
	if got := b.Unobservable(gw); !strings.Contains(got, "egress gateway") {
		t.Errorf("stub gateway: %q", got)
	}
	// A sidecar with Envoy behind a gateway without one cannot be observed either.
	b.sc.workloads[sleep.Ref()].noEnvoy = ""
	if got := b.Unobservable(sleep); !strings.Contains(got, "istio-egressgateway@istio-system runs no Envoy") {
		t.Errorf("Envoy sidecar, stub gateway: %q", got)
	}
	b.sc.skip = "scenario cannot run on this cluster: egress gateway egressgateway-a@istio-egress missing"
	if got := b.Unobservable(bypass); got != b.sc.skip {
		t.Errorf("skipped scenario: %q", got)
	}
}

func TestLeaks(t *testing.T) {
	s := func(v string) *string { return &v }
	before := &snapshot{namespaces: map[string]bool{"default": true}, objects: map[string]bool{"Secret a/b (run old)": true}, corefile: s("c"), mesh: s("m")}
	after := &snapshot{namespaces: map[string]bool{"default": true}, objects: map[string]bool{"Secret a/b (run old)": true}, corefile: s("c"), mesh: s("m")}
	if l := before.leaks(after); len(l) != 0 {
		t.Errorf("no change, leaks %v", l)
	}
	after.namespaces["demo-frontend"] = true
	after.objects["ConfigMap default/egressconf-ca (run run-1)"] = true
	after.corefile = s("c2")
	after.mesh = nil
	l := before.leaks(after)
	want := []string{"ConfigMap default/egressconf-ca (run run-1) is still there", "namespace demo-frontend was created and is still there", "Corefile differs", "mesh config differs"}
	if len(l) != len(want) {
		t.Fatalf("leaks %v", l)
	}
	for i, w := range want {
		if !strings.Contains(l[i], w) {
			t.Errorf("leak %d = %q, want %q", i, l[i], w)
		}
	}
}

func TestReadTimestamped(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	log := "2026-01-02T03:04:05.100000000Z {\"upstream_cluster\":\"old\"}\n" +
		"2026-01-02T03:04:05.600000000Z {\"upstream_cluster\":\"new\"}\n" +
		"garbage\n" +
		"2026-01-02T03:04:06.000000000Z plain line\n"
	lines, err := readTimestamped(strings.NewReader(log), since)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != `{"upstream_cluster":"new"}` || lines[1] != "plain line" {
		t.Errorf("lines %q", lines)
	}
}

func TestRVAtLeast(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		ok        bool
	}{{"10", "10", true}, {"11", "10", true}, {"9", "10", false}, {"abc", "abc", true}, {"abc", "abd", false}} {
		if rvAtLeast(tc.got, tc.want) != tc.ok {
			t.Errorf("rvAtLeast(%s, %s) != %v", tc.got, tc.want, tc.ok)
		}
	}
}

func TestPendingOnlyIstioKinds(t *testing.T) {
	var p pending
	p.noteIstio(objRef{GVR: schema.GroupVersionResource{Resource: "configmaps", Version: "v1"}, Kind: "ConfigMap"}, "1", false)
	if !p.empty() {
		t.Error("a ConfigMap is not istiod's configuration")
	}
	r := objRef{GVR: schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}, Kind: "AuthorizationPolicy", Namespace: "istio-system", Name: "deny"}
	p.noteIstio(r, "5", false)
	p.noteIstio(r, "", true)
	if len(p.istio) != 1 || !p.istio[0].deleted {
		t.Errorf("pending %+v", p.istio)
	}
}

// TestTranslatedKindWaitsForItsEffect: an ASMEgressTrafficPolicy served by a controller is not
// istiod's to report, so convergence waits until istiod's store changes apart from the run's own
// objects and the sentinel, and then reads the same twice.
func TestTranslatedKindWaitsForItsEffect(t *testing.T) {
	for group, want := range map[string]bool{
		"istio.alibabacloud.com": true, "networking.istio.io": false, "security.istio.io": false,
		"networking.k8s.io": false, "": false, "apps": false, "apiextensions.k8s.io": false,
	} {
		if translatedKind(group) != want {
			t.Errorf("translatedKind(%q) = %v, want %v", group, !want, want)
		}
	}
	own := []istioChange{{ref: objRef{Kind: "ServiceEntry", Namespace: "istio-system", Name: "mine"}, resourceVersion: "9"}}
	before := configzSnapshot{"Gateway/istio-system/other": "1"}
	tr := &translation{objects: []objRef{{Kind: "ASMEgressTrafficPolicy", Namespace: "istio-system", Name: "p"}}, before: before}
	steps := []struct {
		now  configzSnapshot
		want bool
	}{
		// Only the run's own object and the sentinel changed: not the controller's effect.
		{configzSnapshot{"Gateway/istio-system/other": "1", "ServiceEntry/istio-system/mine": "9", "ServiceEntry/istio-system/egressconf-sentinel": "3"}, false},
		// The controller wrote a VirtualService: changed, but not yet read twice.
		{configzSnapshot{"Gateway/istio-system/other": "1", "VirtualService/istio-system/asm-p": "5"}, false},
		// And a DestinationRule: still changing.
		{configzSnapshot{"Gateway/istio-system/other": "1", "VirtualService/istio-system/asm-p": "5", "DestinationRule/istio-system/asm-p": "6"}, false},
		// The same again: arrived.
		{configzSnapshot{"Gateway/istio-system/other": "1", "VirtualService/istio-system/asm-p": "5", "DestinationRule/istio-system/asm-p": "6"}, true},
	}
	for i, s := range steps {
		if got, why := tr.arrived("istiod-0", s.now, own); got != s.want {
			t.Fatalf("read %d: arrived %v (%s), want %v", i, got, why, s.want)
		}
	}
	// A second istiod pod is read on its own: its first read is never "the same twice".
	if got, _ := tr.arrived("istiod-1", steps[3].now, own); got {
		t.Error("istiod-1's first read counted as stable")
	}
	var p pending
	p.translated = tr
	if p.empty() {
		t.Error("a pending translated object leaves nothing for Converge to wait on")
	}
}
