package live

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/internal/poll"
)

// objRef names an object the run created.
type objRef struct {
	GVR       schema.GroupVersionResource
	Kind      string
	Namespace string
	Name      string
}

func (r objRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// OwnershipError is the refusal to overwrite (or delete) an object this run did not create.
type OwnershipError struct {
	Kind, Namespace, Name string
	// ManagedBy and Run are the object's ownership labels ("" when absent).
	ManagedBy, Run string
	// RunID is this run's ID.
	RunID string
}

func (e *OwnershipError) Error() string {
	ref := e.Kind + " " + e.Name
	if e.Namespace != "" {
		ref = e.Kind + " " + e.Namespace + "/" + e.Name
	}
	switch {
	case e.ManagedBy == fixtures.ManagedBy && e.Run != "":
		return fmt.Sprintf("refusing to overwrite %s: it belongs to egressconf run %q, not this run (%s); another run is using this cluster, or one crashed: delete the objects labelled %s=%s", ref, e.Run, e.RunID, fixtures.LabelRun, e.Run)
	default:
		return fmt.Sprintf("refusing to overwrite %s: it exists and was not created by egressconf run %s (no %s=%s label)", ref, e.RunID, fixtures.LabelRun, e.RunID)
	}
}

// ours reports whether an object carries this run's label.
func (b *Backend) ours(obj metav1.Object) bool {
	return obj.GetLabels()[fixtures.LabelRun] == b.o.RunID
}

// foreign is the refusal to touch cur, an existing object r that this run did not create (an
// *OwnershipError), or nil when it is this run's. Every write path (dynamic and typed) asks it.
func (b *Backend) foreign(r objRef, cur metav1.Object) error {
	if b.ours(cur) {
		return nil
	}
	cl := cur.GetLabels()
	return &OwnershipError{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name,
		ManagedBy: cl[fixtures.LabelManagedBy], Run: cl[fixtures.LabelRun], RunID: b.o.RunID}
}

// toUnstructured converts a typed object (TypeMeta set) to unstructured.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// resource maps an object's kind to its resource, refreshing discovery once when the kind is
// unknown (a CRD installed after the backend started).
func (b *Backend) resource(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := b.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		b.disc.Invalidate()
		if r, ok := b.mapper.(meta.ResettableRESTMapper); ok {
			r.Reset()
		}
		m, err = b.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("kind %s: %w", gvk, err)
	}
	return m, nil
}

func (b *Backend) client(m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return b.dyn.Resource(m.Resource).Namespace(ns)
	}
	return b.dyn.Resource(m.Resource)
}

// applied is what createOwned did.
type applied struct {
	ref objRef
	// created is true for a new object, false for an update of one of ours.
	created bool
	// changed is false when an update left the object as it was.
	changed bool
	// resourceVersion after the write.
	resourceVersion string
}

// createOwned creates obj with the run's labels, or updates it when it exists and is this run's.
// An existing object without this run's label is an *OwnershipError: never overwritten.
func (b *Backend) createOwned(ctx context.Context, in *unstructured.Unstructured) (applied, error) {
	obj := in.DeepCopy()
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range b.labels() {
		labels[k] = v
	}
	obj.SetLabels(labels)
	m, err := b.resource(obj.GroupVersionKind())
	if err != nil {
		return applied{}, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		obj.SetNamespace("")
	} else if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	ref := objRef{GVR: m.Resource, Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
	c := b.client(m, obj.GetNamespace())
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out, err := c.Create(ctx, obj, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < 3 {
				continue
			}
			if err != nil {
				return applied{}, fmt.Errorf("create %s: %w", ref, err)
			}
			return applied{ref: ref, created: true, changed: true, resourceVersion: out.GetResourceVersion()}, nil
		}
		if err != nil {
			return applied{}, fmt.Errorf("get %s: %w", ref, err)
		}
		if err := b.foreign(ref, cur); err != nil {
			return applied{}, err
		}
		obj.SetResourceVersion(cur.GetResourceVersion())
		if ref.Kind == "Service" {
			// Keep the allocated addresses.
			for _, f := range [][]string{{"spec", "clusterIP"}, {"spec", "clusterIPs"}} {
				if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, f...); ok {
					_ = unstructured.SetNestedField(obj.Object, v, f...)
				}
			}
		}
		out, err := c.Update(ctx, obj, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return applied{}, fmt.Errorf("update %s: %w", ref, err)
		}
		return applied{ref: ref, changed: out.GetResourceVersion() != cur.GetResourceVersion(), resourceVersion: out.GetResourceVersion()}, nil
	}
}

// deleteOwned deletes one object of this run; missing is fine; another owner's object is refused.
// It returns whether something was deleted.
func (b *Backend) deleteOwned(ctx context.Context, r objRef) (bool, error) {
	c := b.dyn.Resource(r.GVR)
	var rc dynamic.ResourceInterface = c
	if r.Namespace != "" {
		rc = c.Namespace(r.Namespace)
	}
	cur, err := rc.Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", r, err)
	}
	if err := b.foreign(r, cur); err != nil {
		return false, err
	}
	if cur.GetDeletionTimestamp() != nil {
		return true, nil
	}
	bg := metav1.DeletePropagationBackground
	err = rc.Delete(ctx, r.Name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: ptr(cur.GetUID())}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("delete %s: %w", r, err)
	}
	return true, nil
}

// deleteRefs deletes the objects in reverse order of refs, then waits for the namespaces among
// them to be gone.
func (b *Backend) deleteRefs(ctx context.Context, refs []objRef) error {
	namespaces, err := b.deleteReverse(ctx, refs)
	return errors.Join(err, b.waitNamespacesGone(ctx, namespaces))
}

// deleteReverse deletes the objects in reverse order of refs, without waiting, and returns the
// namespaces among them it deleted (they are terminating).
func (b *Backend) deleteReverse(ctx context.Context, refs []objRef) ([]string, error) {
	var errs []error
	var namespaces []string
	for i := len(refs) - 1; i >= 0; i-- {
		r := refs[i]
		deleted, err := b.deleteOwned(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deleted && r.Kind == "Namespace" {
			namespaces = append(namespaces, r.Name)
		}
	}
	return namespaces, errors.Join(errs...)
}

// waitNamespacesGone polls until the namespaces no longer exist (their deletion finished), so the
// next scenario can create them again.
func (b *Backend) waitNamespacesGone(ctx context.Context, namespaces []string) error {
	if len(namespaces) == 0 {
		return nil
	}
	var left []string
	err := b.poll(ctx, b.o.Timeouts.Teardown, func(ctx context.Context) (bool, error) {
		left = left[:0]
		for _, ns := range namespaces {
			_, err := b.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err == nil {
				left = append(left, ns)
			} else if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("namespaces still terminating (%s): %w", strings.Join(left, ", "), err)
	}
	return nil
}

// poll runs cond at once and then every Timeouts.Poll until it is true, returns an error, or
// timeout passes ("not after <timeout>"); timeout 0 leaves only ctx to bound it.
func (b *Backend) poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	return poll.Until(ctx, b.o.Timeouts.Poll, timeout, cond)
}

// rvAtLeast reports whether resource version got is want or newer. Kubernetes resource versions
// are opaque, but every API server in use writes etcd revisions: compare them as numbers, and
// fall back to equality.
func rvAtLeast(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseUint(got, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	return err1 == nil && err2 == nil && g >= w
}

func ptr[T any](v T) *T { return &v }
