// Package addons applies extra manifests to a cluster egressconf created (kind: --apply-manifest),
// for components the cluster needs before the run, e.g. a NetworkPolicy enforcer, and waits until
// their DaemonSets and Deployments are ready. The objects are part of the cluster, like the Istio a
// kind run installs: they are kept with it and go when it is deleted.
package addons

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/e2e-framework/klient/decoder"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/klient/wait/conditions"

	"github.com/egressconf/egressconf/internal/poll"
)

// FieldManager is the server-side apply field manager of the objects.
const FieldManager = "egressconf-addons"

// Object is one object of a manifest file.
type Object struct {
	File string
	Obj  *unstructured.Unstructured
}

// Ref names the object and its file for messages: "DaemonSet kube-system/kube-router (file x.yaml)".
func (o Object) Ref() string {
	n := o.Obj.GetName()
	if ns := o.Obj.GetNamespace(); ns != "" {
		n = ns + "/" + n
	}
	return fmt.Sprintf("%s %s (%s)", o.Obj.GetKind(), n, o.File)
}

// Load reads the manifest files' objects (multi-document YAML or JSON) with e2e-framework's
// decoder. A document without kind (only comments, or empty) is skipped, as the decoder does; one
// that does not decode, or lacks apiVersion or metadata.name, is an error naming the file and the
// object's position among the file's objects.
func Load(files []string) ([]Object, error) {
	var objs []Object
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", f, err)
		}
		// n counts the file's objects; refused says the handler, not the decoder, stopped at object n.
		n, refused := 0, false
		err = decoder.DecodeEach(context.Background(), fh, func(_ context.Context, o k8s.Object) error {
			n++
			u, err := toUnstructured(o)
			if err == nil && u.GetName() == "" {
				err = fmt.Errorf("%s: no metadata.name", u.GetKind())
			}
			if err != nil {
				refused = true
				return err
			}
			objs = append(objs, Object{File: f, Obj: u})
			return nil
		})
		fh.Close()
		if err != nil {
			if !refused {
				n++ // the decoder failed on the object after the last one it gave
			}
			return nil, fmt.Errorf("manifest %s: object %d: %w", f, n, err)
		}
		if n == 0 {
			// Nothing to apply is a mistake (an empty file, or documents without kind, which
			// the decoder skips), not a silent no-op.
			return nil, fmt.Errorf("manifest %s: no object (a document without kind is skipped)", f)
		}
	}
	return objs, nil
}

// toUnstructured turns a decoded object (typed for client-go's kinds, unstructured for the
// others) into the unstructured form Apply sends.
func toUnstructured(o k8s.Object) (*unstructured.Unstructured, error) {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	// A typed object converts with fields the file did not have: its zero status and a null
	// creationTimestamp. Neither is the manifest's to apply.
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// Options for Apply.
type Options struct {
	// Timeout bounds the wait for readiness (all workloads together).
	Timeout time.Duration
	// Poll is the interval between readiness checks (500ms when 0).
	Poll time.Duration
	// Progress receives a line per object and per ready workload; nil discards.
	Progress io.Writer
}

// Apply applies the objects in order (server-side apply, so a reused cluster takes the same call)
// and waits until every DaemonSet among them has all its scheduled pods updated and ready and
// every Deployment all its replicas.
func Apply(ctx context.Context, cfg *rest.Config, objs []Object, o Options) error {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, ob := range objs {
		gvk := ob.Obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", ob.Ref(), err)
		}
		data, err := ob.Obj.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s: %w", ob.Ref(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := ob.Obj.GetNamespace()
			if ns == "" {
				ns = metav1.NamespaceDefault
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Patch(ctx, ob.Obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}); err != nil {
			return fmt.Errorf("apply %s: %w", ob.Ref(), err)
		}
		fmt.Fprintf(o.Progress, "   applied %s\n", ob.Ref())
	}
	res, err := resources.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for _, ob := range objs {
		start := time.Now()
		state, err := waitReady(ctx, res, ob, o.Poll)
		if err != nil {
			return fmt.Errorf("%s not ready after %s (%s): %w", ob.Ref(), time.Since(start).Round(time.Second), state, err)
		}
		if state != "" {
			fmt.Fprintf(o.Progress, "   ready: %s, %s (%s)\n", ob.Ref(), state, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// waitReady waits, with e2e-framework's ResourceMatch condition on klient's resources client,
// until a DaemonSet or Deployment is rolled out, and returns its last state in words ("" for other
// kinds, which are ready once applied). ResourceMatch retries a failed read without saying why, so
// when the bound passes with the object unread, one more read names the error.
func waitReady(ctx context.Context, res *resources.Resources, ob Object, every time.Duration) (string, error) {
	ns := ob.Obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	meta := metav1.ObjectMeta{Namespace: ns, Name: ob.Obj.GetName()}
	var obj k8s.Object
	switch {
	case ob.Obj.GroupVersionKind() == appsv1.SchemeGroupVersion.WithKind("DaemonSet"):
		obj = &appsv1.DaemonSet{ObjectMeta: meta}
	case ob.Obj.GroupVersionKind() == appsv1.SchemeGroupVersion.WithKind("Deployment"):
		obj = &appsv1.Deployment{ObjectMeta: meta}
	default:
		return "", nil
	}
	var state string
	read := false
	match := conditions.New(res).ResourceMatch(obj, func(o k8s.Object) bool {
		read = true
		var ok bool
		ok, state = rolledOut(o)
		return ok
	})
	err := poll.Until(ctx, every, 0, func(ctx context.Context) (bool, error) {
		read = false
		return match(ctx)
	})
	if err != nil && !read {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if gerr := res.Get(rctx, meta.Name, meta.Namespace, obj); gerr != nil {
			err = fmt.Errorf("%w (last error: %v)", err, gerr)
		}
	}
	return state, err
}

// rolledOut says whether a DaemonSet (all its scheduled pods, at least one, updated and ready) or
// Deployment (all its replicas updated and ready) is rolled out for its current generation, and its
// state in words. e2e-framework's DaemonSetReady and DeploymentAvailable are weaker (a DaemonSet
// the controller has not counted yet is "ready" with 0 of 0; Available allows unavailable
// replicas), so the check is this one.
func rolledOut(o k8s.Object) (bool, string) {
	switch d := o.(type) {
	case *appsv1.DaemonSet:
		return daemonSetReady(d)
	case *appsv1.Deployment:
		return deploymentReady(d)
	}
	return true, ""
}

func daemonSetReady(d *appsv1.DaemonSet) (bool, string) {
	s := d.Status
	msg := fmt.Sprintf("%d/%d pods ready, %d updated", s.NumberReady, s.DesiredNumberScheduled, s.UpdatedNumberScheduled)
	return s.ObservedGeneration >= d.Generation && s.DesiredNumberScheduled > 0 &&
		s.NumberReady == s.DesiredNumberScheduled && s.UpdatedNumberScheduled == s.DesiredNumberScheduled, msg
}

func deploymentReady(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	msg := fmt.Sprintf("%d/%d replicas ready, %d updated", s.ReadyReplicas, want, s.UpdatedReplicas)
	return s.ObservedGeneration >= d.Generation && s.ReadyReplicas == want && s.UpdatedReplicas == want, msg
}

// Summary is a one-line description of the objects: "kube-router.yaml: 4 objects (DaemonSet kube-system/kube-router, ...)".
func Summary(objs []Object) string {
	byFile := map[string][]string{}
	var files []string
	for _, o := range objs {
		if _, ok := byFile[o.File]; !ok {
			files = append(files, o.File)
		}
		byFile[o.File] = append(byFile[o.File], o.Obj.GetKind()+" "+o.Obj.GetName())
	}
	var parts []string
	for _, f := range files {
		parts = append(parts, fmt.Sprintf("%s: %s", f, strings.Join(byFile[f], ", ")))
	}
	return strings.Join(parts, "; ")
}

func ptr[T any](v T) *T { return &v }
