// Package addons applies extra manifests to a cluster egressconf created (kind: --apply-manifest),
// for components the cluster needs before the run, e.g. a NetworkPolicy enforcer, and waits until
// their DaemonSets and Deployments are ready. The objects are part of the cluster, like the Istio a
// kind run installs: they are kept with it and go when it is deleted.
package addons

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

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

// Load reads the manifest files' objects (multi-document YAML or JSON). A document without
// apiVersion, kind or metadata.name is an error naming the file and the document's position.
func Load(files []string) ([]Object, error) {
	var objs []Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", f, err)
		}
		dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 1; ; i++ {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("manifest %s: document %d: %w", f, i, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			switch {
			case u.GetAPIVersion() == "":
				return nil, fmt.Errorf("manifest %s: document %d: no apiVersion", f, i)
			case u.GetKind() == "":
				return nil, fmt.Errorf("manifest %s: document %d: no kind", f, i)
			case u.GetName() == "":
				return nil, fmt.Errorf("manifest %s: document %d (%s): no metadata.name", f, i, u.GetKind())
			}
			objs = append(objs, Object{File: f, Obj: u})
		}
	}
	return objs, nil
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
	cs, err := kubernetes.NewForConfig(cfg)
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
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for _, ob := range objs {
		if ob.Obj.GroupVersionKind().Group != "apps" {
			continue
		}
		start := time.Now()
		var last string
		// An error (the object not found yet, the API server busy) is retried until the bound.
		err := poll.Retrying(ctx, o.Poll, 0, func(ctx context.Context) (bool, error) {
			var ok bool
			var err error
			ok, last, err = ready(ctx, cs, ob)
			return ok, err
		})
		if err != nil {
			return fmt.Errorf("%s not ready after %s (%s): %w", ob.Ref(), time.Since(start).Round(time.Second), last, err)
		}
		if last != "" {
			fmt.Fprintf(o.Progress, "   ready: %s, %s (%s)\n", ob.Ref(), last, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// ready says whether a DaemonSet or Deployment is rolled out, and its state in words ("" for
// other kinds, which are ready once applied).
func ready(ctx context.Context, cs kubernetes.Interface, ob Object) (bool, string, error) {
	ns, name := ob.Obj.GetNamespace(), ob.Obj.GetName()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	switch ob.Obj.GetKind() {
	case "DaemonSet":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return daemonSetReady(d)
	case "Deployment":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return deploymentReady(d)
	}
	return true, "", nil
}

func daemonSetReady(d *appsv1.DaemonSet) (bool, string, error) {
	s := d.Status
	msg := fmt.Sprintf("%d/%d pods ready, %d updated", s.NumberReady, s.DesiredNumberScheduled, s.UpdatedNumberScheduled)
	return s.ObservedGeneration >= d.Generation && s.DesiredNumberScheduled > 0 &&
		s.NumberReady == s.DesiredNumberScheduled && s.UpdatedNumberScheduled == s.DesiredNumberScheduled, msg, nil
}

func deploymentReady(d *appsv1.Deployment) (bool, string, error) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	msg := fmt.Sprintf("%d/%d replicas ready, %d updated", s.ReadyReplicas, want, s.UpdatedReplicas)
	return s.ObservedGeneration >= d.Generation && s.ReadyReplicas == want && s.UpdatedReplicas == want, msg, nil
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
