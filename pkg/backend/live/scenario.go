package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"k8s.io/apimachinery/pkg/runtime"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// scenarioState is what one scenario created and changed.
type scenarioState struct {
	s *catalog.Scenario
	// skip, when set, makes every check of the scenario unobservable (e.g. a missing gateway);
	// its steps then change nothing.
	skip string
	// created lists the objects the scenario created, in creation order (deleted in reverse).
	created []objRef
	// files are the manifest keys applied and not deleted since: a delete of one of them is not an
	// error for an object already gone (an earlier delete of another file that names it).
	files map[string]bool
	// injection holds the original istio-injection label of each pre-existing namespace the
	// scenario relabelled (nil: the label was absent).
	injection map[string]*string
	// nsLabels holds, per pre-existing namespace, the original value of each of the scenario's
	// namespace labels the run set there (nil: the label was absent).
	nsLabels map[string]map[string]*string
	// workloads deployed, by ref.
	workloads map[string]*workloadState
	// caNamespaces are the namespaces holding the stand-in CA ConfigMap the scenario created for
	// its TLS-originating DestinationRules (originationCA).
	caNamespaces map[string]bool
	// noEnvoyGateways are the scenario's gateways without Envoy.
	noEnvoyGateways []string
	pending         pending
}

type workloadState struct {
	w catalog.Workload
	// pod is the pod found when it became ready (for convergence and diagnostics).
	pod string
	// noEnvoy is why checks from this workload are unobservable ("" when its Envoy runs or it
	// has no sidecar).
	noEnvoy string
}

// createTracked creates (or updates, when it is this run's) a typed object and tracks it for the
// scenario's teardown.
func (b *Backend) createTracked(ctx context.Context, sc *scenarioState, o runtime.Object) error {
	u, err := toUnstructured(o)
	if err != nil {
		return err
	}
	a, err := b.createOwned(ctx, u)
	if err != nil {
		return err
	}
	sc.track(a.ref)
	return nil
}

func (sc *scenarioState) track(r objRef) {
	for _, x := range sc.created {
		if x == r {
			return
		}
	}
	sc.created = append(sc.created, r)
}

func (sc *scenarioState) untrack(r objRef) {
	for i, x := range sc.created {
		if x == r {
			sc.created = append(sc.created[:i], sc.created[i+1:]...)
			return
		}
	}
}

// Setup implements backend.Backend: namespaces (created, or relabelled for injection and restored
// later), the CA bundle for curl, the starting mesh policy, the non-deferred workloads, and
// convergence.
func (b *Backend) Setup(ctx context.Context, s *catalog.Scenario) (err error) {
	defer explain(&err)
	if b.sc != nil {
		return fmt.Errorf("scenario %s is still set up: tear it down first", b.sc.s.Metadata.Group)
	}
	sc := &scenarioState{s: s, injection: map[string]*string{}, workloads: map[string]*workloadState{}}
	b.sc = sc
	if why := b.missingGateways(s); why != "" {
		sc.skip = "scenario cannot run on this cluster: " + why
		fmt.Fprintf(b.o.Progress, "   %s\n", sc.skip)
		return nil
	}
	for _, name := range s.Spec.Gateways {
		if g := b.gateways[name]; g != nil && g.noEnvoy != "" {
			sc.noEnvoyGateways = append(sc.noEnvoyGateways, g.gw.Ref())
		}
	}
	kept, err := b.adopt(ctx, sc)
	if err != nil {
		return err
	}
	namespaces := scenarioNamespaces(s)
	for _, ns := range namespaces {
		if err := b.ensureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	if b.standin != nil {
		for _, ns := range namespaces {
			if err := b.createTracked(ctx, sc, b.standin.CABundleConfigMap(ns.Name)); err != nil {
				return err
			}
		}
	}
	if err := b.SetMeshPolicy(ctx, s.Spec.MeshPolicy); err != nil {
		return err
	}
	var ws []catalog.Workload
	for _, w := range s.Spec.Workloads {
		if st := kept[w.Ref()]; st != nil {
			sc.workloads[w.Ref()] = st
			continue
		}
		if !w.Gateway && !w.Deferred {
			ws = append(ws, w)
		}
	}
	if len(ws) > 0 {
		// A fixture waits for its pods (an image pull can take minutes): a phase says so.
		refs := make([]string, len(ws))
		for i, w := range ws {
			refs[i] = w.Ref()
		}
		if err := b.phase(s.Metadata.Group+" fixtures "+strings.Join(refs, ", "), func() error { return b.deploy(ctx, ws) }); err != nil {
			return err
		}
	}
	return b.Converge(ctx)
}

// scenarioNamespaces are the namespaces a scenario lists, then those of its workloads it does not
// list (with no labels).
func scenarioNamespaces(s *catalog.Scenario) []catalog.Namespace {
	namespaces := append([]catalog.Namespace(nil), s.Spec.Namespaces...)
	seen := map[string]bool{}
	for _, ns := range namespaces {
		seen[ns.Name] = true
	}
	for _, w := range s.Spec.Workloads {
		if !w.Gateway && !seen[w.Namespace] {
			seen[w.Namespace] = true
			namespaces = append(namespaces, catalog.Namespace{Name: w.Namespace})
		}
	}
	return namespaces
}

// ensureNamespace creates the namespace with the run's labels, or, when it exists and is not the
// run's, sets its istio-injection label as the scenario needs it (restored at teardown).
func (b *Backend) ensureNamespace(ctx context.Context, ns catalog.Namespace) error {
	sc := b.sc
	want := "disabled"
	if ns.Injected() {
		want = "enabled"
	}
	var cur *corev1.Namespace
	err := b.poll(ctx, b.o.Timeouts.Teardown, func(ctx context.Context) (bool, error) {
		var err error
		cur, err = b.cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cur = nil
			return true, nil
		}
		if err != nil {
			return false, err
		}
		// A namespace of an earlier scenario still terminating: wait for it to go.
		return cur.DeletionTimestamp == nil, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns.Name, err)
	}
	if cur == nil {
		return b.createTracked(ctx, sc, fixtures.Namespace(ns, b.fixtureOptions()))
	}
	if b.ours(cur) {
		return nil // kept from an earlier scenario (--keep)
	}
	if err := b.setNamespaceLabels(ctx, sc, cur, ns.Labels); err != nil {
		return err
	}
	old, had := cur.Labels["istio-injection"]
	if had && old == want {
		return nil
	}
	if _, done := sc.injection[ns.Name]; !done {
		if had {
			sc.injection[ns.Name] = &old
		} else {
			sc.injection[ns.Name] = nil
		}
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{"istio-injection":%q}}}`, want)
	if _, err := b.cs.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("namespace %s: set istio-injection=%s: %w", ns.Name, want, err)
	}
	fmt.Fprintf(b.o.Progress, "   namespace %s existed: istio-injection set to %s (restored at teardown)\n", ns.Name, want)
	return nil
}

// setNamespaceLabels sets the scenario's labels on a namespace that is not the run's, keeping
// what each was for the teardown.
func (b *Backend) setNamespaceLabels(ctx context.Context, sc *scenarioState, cur *corev1.Namespace, labels map[string]string) error {
	set := map[string]string{}
	for k, v := range labels {
		old, had := cur.Labels[k]
		if had && old == v {
			continue
		}
		if sc.nsLabels == nil {
			sc.nsLabels = map[string]map[string]*string{}
		}
		if sc.nsLabels[cur.Name] == nil {
			sc.nsLabels[cur.Name] = map[string]*string{}
		}
		if _, done := sc.nsLabels[cur.Name][k]; !done {
			if had {
				sc.nsLabels[cur.Name][k] = &old
			} else {
				sc.nsLabels[cur.Name][k] = nil
			}
		}
		set[k] = v
	}
	if len(set) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": set}})
	if err != nil {
		return err
	}
	if _, err := b.cs.CoreV1().Namespaces().Patch(ctx, cur.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("namespace %s: set labels %v: %w", cur.Name, set, err)
	}
	fmt.Fprintf(b.o.Progress, "   namespace %s existed: labels %v set (restored at teardown)\n", cur.Name, set)
	return nil
}

// restoreInjection puts the istio-injection labels, and the scenario's own labels, of
// pre-existing namespaces back.
func (b *Backend) restoreInjection(ctx context.Context, sc *scenarioState) error {
	var errs []error
	names := make([]string, 0, len(sc.injection))
	for ns := range sc.injection {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		v := sc.injection[ns]
		patch := `{"metadata":{"labels":{"istio-injection":null}}}`
		if v != nil {
			patch = fmt.Sprintf(`{"metadata":{"labels":{"istio-injection":%q}}}`, *v)
		}
		if _, err := b.cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("namespace %s: restore istio-injection: %w", ns, err))
			continue
		}
		delete(sc.injection, ns)
	}
	names = names[:0]
	for ns := range sc.nsLabels {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		labels := map[string]any{}
		for k, v := range sc.nsLabels[ns] {
			if v == nil {
				labels[k] = nil // a merge patch's null removes the label
			} else {
				labels[k] = *v
			}
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := b.cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("namespace %s: restore labels: %w", ns, err))
			continue
		}
		delete(sc.nsLabels, ns)
	}
	return errors.Join(errs...)
}

// Apply implements backend.Backend.
func (b *Backend) Apply(ctx context.Context, m backend.Manifest) (err error) {
	defer explain(&err)
	sc := b.sc
	if sc == nil {
		return errors.New("no scenario is set up")
	}
	if sc.skip != "" {
		return nil
	}
	if err := b.originationCA(ctx, sc, m.Objects); err != nil {
		return err
	}
	for _, o := range m.Objects {
		if translatedKind(o.GroupVersionKind().Group) {
			if err := b.noteTranslated(ctx, objRef{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}); err != nil {
				return fmt.Errorf("%s %s: reading istiod's configuration before the apply: %w", o.GetKind(), o.GetName(), err)
			}
		}
		a, err := b.createOwned(ctx, o)
		if err != nil {
			return err
		}
		sc.track(a.ref)
		if a.changed {
			sc.pending.noteIstio(a.ref, a.resourceVersion, false)
		}
	}
	if sc.files == nil {
		sc.files = map[string]bool{}
	}
	sc.files[m.Key] = true
	return nil
}

// Delete implements backend.Backend: the manifest's objects, in reverse order, as `kubectl delete
// -f` (whichever file last applied them). An object already gone is an error only when the file
// is not applied (never, or deleted already): validate refuses that too.
func (b *Backend) Delete(ctx context.Context, m backend.Manifest) (err error) {
	defer explain(&err)
	sc := b.sc
	if sc == nil {
		return errors.New("no scenario is set up")
	}
	if sc.skip != "" {
		return nil
	}
	for i := len(m.Objects) - 1; i >= 0; i-- {
		o := m.Objects[i]
		mp, err := b.resource(o.GroupVersionKind())
		if err != nil {
			return err
		}
		ns := o.GetNamespace()
		if mp.Scope.Name() != meta.RESTScopeNameNamespace {
			ns = ""
		} else if ns == "" {
			ns = "default"
		}
		r := objRef{GVR: mp.Resource, Kind: o.GetKind(), Namespace: ns, Name: o.GetName()}
		if translatedKind(r.GVR.Group) {
			if err := b.noteTranslated(ctx, r); err != nil {
				return fmt.Errorf("%s: reading istiod's configuration before the delete: %w", r, err)
			}
		}
		deleted, err := b.deleteOwned(ctx, r)
		if err != nil {
			return err
		}
		if !deleted {
			if sc.files[m.Key] {
				continue // an earlier delete of another file that names it deleted it
			}
			return fmt.Errorf("%s was not applied", r)
		}
		sc.untrack(r)
		sc.pending.noteIstio(r, "", true)
	}
	delete(sc.files, m.Key)
	return nil
}

// Deploy implements backend.Backend.
func (b *Backend) Deploy(ctx context.Context, w catalog.Workload) (err error) {
	defer explain(&err)
	if b.sc == nil {
		return errors.New("no scenario is set up")
	}
	if b.sc.skip != "" {
		return nil
	}
	return b.deploy(ctx, []catalog.Workload{w})
}

// deploy creates the workloads' objects, then waits for each to have a ready pod and checks its
// sidecar: injected when the workload wants one, absent otherwise, and whether Envoy runs in it.
func (b *Backend) deploy(ctx context.Context, ws []catalog.Workload) error {
	sc := b.sc
	for _, w := range ws {
		objs, err := fixtures.Workload(w, b.fixtureOptions())
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := b.createTracked(ctx, sc, o); err != nil {
				return fmt.Errorf("deploy %s: %w", w.Ref(), err)
			}
		}
	}
	for _, w := range ws {
		var pod *corev1.Pod
		err := b.poll(ctx, b.o.Timeouts.Setup, func(ctx context.Context) (bool, error) {
			p, err := b.workloadPod(ctx, w)
			pod = p
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("workload %s: no ready pod: %s: %w", w.Ref(), b.podTrouble(ctx, w), err)
		}
		st := &workloadState{w: w, pod: pod.Name}
		switch {
		case w.HasSidecar() && !hasContainer(pod, ProxyContainer):
			return fmt.Errorf("workload %s: pod %s has no %s container although it should be injected (is istiod's sidecar injector serving namespace %s?)", w.Ref(), pod.Name, ProxyContainer, w.Namespace)
		case !w.HasSidecar() && hasContainer(pod, ProxyContainer):
			return fmt.Errorf("workload %s: pod %s has an %s container although it opts out of injection", w.Ref(), pod.Name, ProxyContainer)
		case w.HasSidecar():
			why, err := b.envoyState(ctx, pod)
			if err != nil {
				return fmt.Errorf("workload %s: %w", w.Ref(), err)
			}
			st.noEnvoy = why
			if why == "" {
				sc.pending.proxies = true
			} else if !b.predictOnly() {
				fmt.Fprintf(b.o.Progress, "   %s: sidecar without Envoy: its checks will be skipped\n", w.Ref())
			}
		}
		sc.workloads[w.Ref()] = st
	}
	return nil
}

// podTrouble describes why a workload's pods are not ready, for error messages.
func (b *Backend) podTrouble(ctx context.Context, w catalog.Workload) string {
	pods, err := b.cs.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + w.Name + "," + fixtures.LabelRun + "=" + b.o.RunID})
	if err != nil || len(pods.Items) == 0 {
		rs, _ := b.cs.AppsV1().ReplicaSets(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + w.Name})
		if rs != nil {
			for _, r := range rs.Items {
				for _, c := range r.Status.Conditions {
					if c.Type == "ReplicaFailure" {
						return "replica set " + r.Name + ": " + c.Message
					}
				}
			}
		}
		return "no pods"
	}
	var parts []string
	for _, p := range pods.Items {
		s := fmt.Sprintf("pod %s %s", p.Name, p.Status.Phase)
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if cs.State.Waiting != nil {
				s += fmt.Sprintf(", %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, clip(cs.State.Waiting.Message, 160))
			} else if !cs.Ready {
				s += fmt.Sprintf(", %s not ready", cs.Name)
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Remove implements backend.Backend: the workload's objects in reverse order, waiting for its pods
// to be gone.
func (b *Backend) Remove(ctx context.Context, w catalog.Workload) (err error) {
	defer explain(&err)
	sc := b.sc
	if sc == nil {
		return errors.New("no scenario is set up")
	}
	if sc.skip != "" {
		return nil
	}
	objs, err := fixtures.Workload(w, b.fixtureOptions())
	if err != nil {
		return err
	}
	for i := len(objs) - 1; i >= 0; i-- {
		u, err := toUnstructured(objs[i])
		if err != nil {
			return err
		}
		mp, err := b.resource(u.GroupVersionKind())
		if err != nil {
			return err
		}
		r := objRef{GVR: mp.Resource, Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
		if _, err := b.deleteOwned(ctx, r); err != nil {
			return err
		}
		sc.untrack(r)
	}
	delete(sc.workloads, w.Ref())
	sc.pending.proxies = true
	return b.waitPodsGone(ctx, w.Namespace, "app="+w.Name+","+fixtures.LabelRun+"="+b.o.RunID)
}

// waitPodsGone polls until no pod matches the selector in the namespace.
func (b *Backend) waitPodsGone(ctx context.Context, ns, selector string) error {
	var n int
	err := b.poll(ctx, b.o.Timeouts.Teardown, func(ctx context.Context) (bool, error) {
		pods, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		n = len(pods.Items)
		return n == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%d pods %s in %s still there: %w", n, selector, ns, err)
	}
	return nil
}

// Unobservable implements backend.Backend.
func (b *Backend) Unobservable(w catalog.Workload) string {
	sc := b.sc
	if sc == nil {
		return ""
	}
	if sc.skip != "" {
		return sc.skip
	}
	if b.predictOnly() {
		// Predictions need istiod's xDS, not a running Envoy.
		return ""
	}
	if w.Gateway {
		if g := b.gateways[w.Name]; g != nil && g.noEnvoy != "" {
			return "egress gateway " + g.noEnvoy
		}
		return ""
	}
	if !w.HasSidecar() {
		return "" // no proxy in the path: curl's result is a real observation
	}
	if st := sc.workloads[w.Ref()]; st != nil && st.noEnvoy != "" {
		return "sidecar: " + st.noEnvoy
	}
	if len(sc.noEnvoyGateways) > 0 {
		return fmt.Sprintf("the scenario's egress gateway %s runs no Envoy, so requests routed through it cannot be observed", strings.Join(sc.noEnvoyGateways, ", "))
	}
	return ""
}

// Teardown implements backend.Backend: everything the scenario created, in reverse order, its
// pods gone, namespace labels and mesh config restored; but the run's namespaces and the
// scenario's starting fixtures are carried to the next scenario, which keeps what it wants as it
// is (carry.go). With Keep it leaves everything.
func (b *Backend) Teardown(ctx context.Context, s *catalog.Scenario) (err error) {
	defer explain(&err)
	sc := b.sc
	if sc == nil {
		return nil
	}
	b.sc = nil
	if b.o.Keep {
		fmt.Fprintf(b.o.Progress, "   --keep: %d objects of %s left in place\n", len(sc.created), s.Metadata.Group)
		return nil
	}
	if sc.skip != "" {
		return nil // it created and changed nothing
	}
	var errs []error
	carry, drop, err := b.park(sc)
	if err != nil {
		// Nothing is carried: everything goes.
		errs = append(errs, fmt.Errorf("keeping the fixtures for the next scenario: %w", err))
		carry, drop = nil, sc.created
	}
	if err := b.deleteRefs(ctx, drop); err != nil {
		errs = append(errs, err)
	}
	// Pods of deleted Deployments in namespaces that stay (default, istio-egress...), but the
	// carried fixtures'.
	keepPods := map[string]bool{}
	nsSeen := map[string]bool{}
	if carry != nil {
		for ref := range carry.workloads {
			keepPods[ref] = true
		}
	}
	for _, st := range sc.workloads {
		nsSeen[st.w.Namespace] = true
	}
	for _, r := range drop {
		if r.Kind == "Deployment" {
			nsSeen[r.Namespace] = true
		}
		if carry != nil {
			carry.pending.noteIstio(r, "", true)
		}
	}
	var namespaces []string
	for ns := range nsSeen {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		if err := b.waitPodsGoneExcept(ctx, ns, keepPods); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.restoreInjection(ctx, sc); err != nil {
		errs = append(errs, err)
	}
	restored, err := b.restoreMeshMode(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	if carry != nil {
		carry.pending.mesh = restored
	}
	b.carry = carry
	return errors.Join(errs...)
}

var _ backend.Backend = (*Backend)(nil)

// pending lists the changes Converge has yet to see delivered.
type pending struct {
	istio []istioChange
	// mesh is the outbound traffic policy istiod must show ("" when unchanged).
	mesh string
	// proxies is set when workloads came or went.
	proxies bool
	// translated are objects a controller turns into Istio configuration (effect.go).
	translated *translation
}

type istioChange struct {
	ref objRef
	// resourceVersion istiod must have (for an apply).
	resourceVersion string
	deleted         bool
}

func (p *pending) empty() bool {
	return len(p.istio) == 0 && p.mesh == "" && !p.proxies && p.translated == nil
}

// noteIstio records a change of an Istio configuration object (other kinds are not istiod's).
func (p *pending) noteIstio(r objRef, rv string, deleted bool) {
	if !strings.HasSuffix(r.GVR.Group, "istio.io") {
		return
	}
	for i, c := range p.istio {
		if c.ref == r {
			p.istio[i] = istioChange{ref: r, resourceVersion: rv, deleted: deleted}
			return
		}
	}
	p.istio = append(p.istio, istioChange{ref: r, resourceVersion: rv, deleted: deleted})
}
