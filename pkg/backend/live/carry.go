package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// carried is what a scenario's teardown leaves for the next scenario: the namespaces the run
// created and the fixtures the scenario started with (their Deployments, Services, service
// accounts), with the stand-in's CA bundles. Everything else the scenario created is deleted at
// its teardown. The next Setup keeps each namespace and fixture it wants exactly as it is (the
// same rendered objects; for a fixture, the same pod, still ready) and deletes the rest; Close
// deletes whatever is left. Starting the same sleep and nginx pods again for every group, and
// waiting for their namespaces to go, was most of a group's setup and teardown.
type carried struct {
	// from names the scenario that left it (progress output).
	from string
	// refs are the objects, in creation order.
	refs []objRef
	// namespaces are the run-created namespaces, with what they were created from.
	namespaces map[string]string
	// workloads are the fixtures, by ref.
	workloads map[string]*carriedWorkload
	// pending are the teardown's changes the next convergence must see delivered: the Istio
	// objects it deleted and the outbound traffic policy it restored.
	pending pending
}

type carriedWorkload struct {
	st *workloadState
	// rendered is what its objects were created from.
	rendered string
	refs     []objRef
}

// rendered is the JSON of the objects a fixture or namespace is created from: two scenarios want
// the same object when it is equal.
func rendered[O runtime.Object](objs ...O) (string, error) {
	b, err := json.Marshal(objs)
	return string(b), err
}

// renderedWorkload is what a fixture is created from, with its namespace as the scenario wants it:
// whether a pod has a sidecar, and what namespace selectors see, depend on the namespace's labels
// when the pod started.
func (b *Backend) renderedWorkload(s *catalog.Scenario, w catalog.Workload, objs []fixtures.Object) (string, error) {
	for _, ns := range scenarioNamespaces(s) {
		if ns.Name == w.Namespace {
			objs = append(objs[:len(objs):len(objs)], fixtures.Namespace(ns, b.fixtureOptions()))
		}
	}
	return rendered(objs...)
}

// namespaceRef is the tracked reference of a namespace.
func namespaceRef(name string) objRef {
	return objRef{GVR: corev1.SchemeGroupVersion.WithResource("namespaces"), Kind: "Namespace", Name: name}
}

// refsOf maps rendered objects to the references the backend tracks.
func refsOf[O runtime.Object](b *Backend, objs []O) ([]objRef, error) {
	out := make([]objRef, 0, len(objs))
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return nil, err
		}
		mp, err := b.resource(u.GroupVersionKind())
		if err != nil {
			return nil, err
		}
		out = append(out, objRef{GVR: mp.Resource, Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	return out, nil
}

// park splits what the scenario created into what is carried to the next scenario and what is
// deleted now.
func (b *Backend) park(sc *scenarioState) (*carried, []objRef, error) {
	c := &carried{from: sc.s.Metadata.Group, namespaces: map[string]string{}, workloads: map[string]*carriedWorkload{}}
	keep := map[objRef]bool{}
	created := map[objRef]bool{}
	for _, r := range sc.created {
		created[r] = true
	}
	for _, ns := range scenarioNamespaces(sc.s) {
		if !created[namespaceRef(ns.Name)] {
			continue // not the run's namespace
		}
		r, err := rendered(fixtures.Namespace(ns, b.fixtureOptions()))
		if err != nil {
			return nil, nil, err
		}
		c.namespaces[ns.Name] = r
		keep[namespaceRef(ns.Name)] = true
	}
	for _, w := range sc.s.Spec.Workloads {
		st := sc.workloads[w.Ref()]
		if w.Gateway || w.Deferred || st == nil {
			continue // a fixture deployed by a step is not the next scenario's start
		}
		objs, err := fixtures.Workload(w, b.fixtureOptions())
		if err != nil {
			return nil, nil, err
		}
		refs, err := refsOf(b, objs)
		if err != nil {
			return nil, nil, err
		}
		r, err := b.renderedWorkload(sc.s, w, objs)
		if err != nil {
			return nil, nil, err
		}
		all := true
		for _, ref := range refs {
			all = all && created[ref]
		}
		if !all {
			continue
		}
		c.workloads[w.Ref()] = &carriedWorkload{st: st, rendered: r, refs: refs}
		for _, ref := range refs {
			keep[ref] = true
		}
	}
	if b.standin != nil {
		for r := range created {
			if r.Kind == "ConfigMap" && r.Name == b.standin.CABundleConfigMap(r.Namespace).Name {
				keep[r] = true
			}
		}
	}
	var drop []objRef
	for _, r := range sc.created {
		if keep[r] {
			c.refs = append(c.refs, r)
		} else {
			drop = append(drop, r)
		}
	}
	return c, drop, nil
}

// adopt decides, at the start of a scenario, which of the carried objects it keeps: a namespace
// it lists that is created from the same object, a starting fixture rendered the same whose pod
// is still the one found ready. The rest is deleted without waiting (a namespace the scenario
// creates again is waited for by ensureNamespace; Close waits for all of them). It returns the
// kept fixtures' states.
func (b *Backend) adopt(ctx context.Context, sc *scenarioState) (map[string]*workloadState, error) {
	c := b.carry
	b.carry = nil
	if c == nil {
		return nil, nil
	}
	sc.pending = c.pending
	keep := map[objRef]bool{}
	wanted := map[string]bool{} // the scenario's namespaces
	wantNS := map[string]bool{} // the carried namespaces it keeps
	for _, ns := range scenarioNamespaces(sc.s) {
		wanted[ns.Name] = true
		r, err := rendered(fixtures.Namespace(ns, b.fixtureOptions()))
		if err != nil {
			return nil, err
		}
		if was, ok := c.namespaces[ns.Name]; ok && was == r {
			wantNS[ns.Name] = true
			keep[namespaceRef(ns.Name)] = true
		}
	}
	kept := map[string]*workloadState{}
	for _, w := range sc.s.Spec.Workloads {
		cw := c.workloads[w.Ref()]
		if w.Gateway || w.Deferred || cw == nil {
			continue
		}
		if _, runNS := c.namespaces[w.Namespace]; runNS && !wantNS[w.Namespace] {
			continue // its namespace goes
		}
		objs, err := fixtures.Workload(w, b.fixtureOptions())
		if err != nil {
			return nil, err
		}
		r, err := b.renderedWorkload(sc.s, w, objs)
		if err != nil {
			return nil, err
		}
		if r != cw.rendered {
			continue
		}
		if pod, err := b.workloadPod(ctx, w); err != nil || pod.Name != cw.st.pod {
			continue // its pod changed: started again
		}
		st := *cw.st
		st.w = w
		kept[w.Ref()] = &st
		for _, ref := range cw.refs {
			keep[ref] = true
		}
	}
	var drop []objRef
	for _, r := range c.refs {
		switch {
		case keep[r]:
			sc.track(r)
		case r.Kind == "ConfigMap" && wanted[r.Namespace] && (wantNS[r.Namespace] || c.namespaces[r.Namespace] == ""):
			sc.track(r) // a CA bundle in a namespace that stays: Setup writes it again
		default:
			drop = append(drop, r)
		}
	}
	if len(kept)+len(wantNS) > 0 {
		var names []string
		for ns := range wantNS {
			names = append(names, ns)
		}
		for ref := range kept {
			names = append(names, ref)
		}
		sort.Strings(names)
		fmt.Fprintf(b.o.Progress, "   kept from %s: %s\n", c.from, strings.Join(names, ", "))
	}
	if err := b.dropCarried(ctx, drop, c); err != nil {
		return nil, err
	}
	return kept, nil
}

// dropCarried deletes carried objects (in reverse order) without waiting for namespaces to go,
// remembering them for Close; it waits for the pods of deleted fixtures in namespaces that stay.
func (b *Backend) dropCarried(ctx context.Context, drop []objRef, c *carried) error {
	namespaces, err := b.deleteReverse(ctx, drop)
	errs := []error{err}
	b.terminating = append(b.terminating, namespaces...)
	dropped := map[objRef]bool{}
	for _, r := range drop {
		dropped[r] = true
	}
	for _, cw := range c.workloads {
		ns := cw.st.w.Namespace
		if _, runNS := c.namespaces[ns]; runNS && dropped[namespaceRef(ns)] {
			continue // goes with its namespace
		}
		if len(cw.refs) > 0 && dropped[cw.refs[0]] {
			if err := b.waitPodsGone(ctx, ns, "app="+cw.st.w.Name+","+fixtures.LabelRun+"="+b.o.RunID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// dropAllCarried deletes everything carried and waits for it to be gone (Close).
func (b *Backend) dropAllCarried(ctx context.Context) error {
	var errs []error
	if c := b.carry; c != nil {
		b.carry = nil
		if err := b.dropCarried(ctx, c.refs, c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.waitNamespacesGone(ctx, b.terminating); err != nil {
		errs = append(errs, err)
	}
	b.terminating = nil
	return errors.Join(errs...)
}

// waitPodsGoneExcept polls until no pod of the run is left in the namespace but those of the
// listed workloads (the carried fixtures, by name@namespace).
func (b *Backend) waitPodsGoneExcept(ctx context.Context, ns string, except map[string]bool) error {
	var left []string
	err := b.poll(ctx, b.o.Timeouts.Teardown, func(ctx context.Context) (bool, error) {
		pods, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=" + b.o.RunID})
		if err != nil {
			return false, err
		}
		left = left[:0]
		for _, p := range pods.Items {
			if !except[p.Labels["app"]+"@"+ns] {
				left = append(left, p.Name)
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("pods %s in %s still there: %w", strings.Join(left, ", "), ns, err)
	}
	return nil
}
