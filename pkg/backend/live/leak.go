package live

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/clusterdns"
)

// snapshot is what the leak check compares: namespaces, objects carrying an egressconf run label
// (any run), CoreDNS's Corefile and istiod's mesh config.
type snapshot struct {
	namespaces map[string]bool
	objects    map[string]bool
	// corefile and mesh are nil when their ConfigMap does not exist.
	corefile, mesh *string
}

// snapshot lists the cluster's state for the leak check.
func (b *Backend) snapshot(ctx context.Context) (*snapshot, error) {
	s := &snapshot{namespaces: map[string]bool{}, objects: map[string]bool{}}
	nss, err := b.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, ns := range nss.Items {
		s.namespaces[ns.Name] = true
	}
	b.disc.Invalidate()
	lists, err := b.disc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") || r.Name == "events" {
				continue
			}
			gvr := gv.WithResource(r.Name)
			lister := b.quietDyn
			if lister == nil {
				lister = b.dyn
			}
			list, err := lister.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun})
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err) {
					continue
				}
				return nil, fmt.Errorf("list %s: %w", gvr, err)
			}
			for _, o := range list.Items {
				key := r.Kind + " " + o.GetName()
				if o.GetNamespace() != "" {
					key = r.Kind + " " + o.GetNamespace() + "/" + o.GetName()
				}
				s.objects[key+" (run "+o.GetLabels()[fixtures.LabelRun]+")"] = true
			}
		}
	}
	if cm, err := b.cs.CoreV1().ConfigMaps(clusterdns.DefaultNamespace).Get(ctx, clusterdns.DefaultConfigMap, metav1.GetOptions{}); err == nil {
		v := cm.Data[clusterdns.CorefileKey]
		s.corefile = &v
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if cm, err := b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{}); err == nil {
		v := cm.Data[MeshKey]
		s.mesh = &v
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return s, nil
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// leaks compares a snapshot after the run with the baseline.
func (before *snapshot) leaks(after *snapshot) []string {
	var out []string
	for ns := range after.namespaces {
		if !before.namespaces[ns] {
			out = append(out, "namespace "+ns+" was created and is still there")
		}
	}
	for o := range after.objects {
		if !before.objects[o] {
			out = append(out, o+" is still there")
		}
	}
	sort.Strings(out)
	if !equalPtr(before.corefile, after.corefile) {
		out = append(out, fmt.Sprintf("ConfigMap %s/%s: the Corefile differs from before the run", clusterdns.DefaultNamespace, clusterdns.DefaultConfigMap))
	}
	if !equalPtr(before.mesh, after.mesh) {
		out = append(out, fmt.Sprintf("ConfigMap %s/%s: the mesh config differs from before the run", IstioNamespace, MeshConfigMap))
	}
	return out
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// leakCheck polls (garbage collection of pods and endpoint slices takes a moment) until the
// cluster is as the baseline found it, and reports what is left when the bound passes.
func (b *Backend) leakCheck(ctx context.Context) error {
	var left []string
	err := b.poll(ctx, b.o.Timeouts.Teardown, func(ctx context.Context) (bool, error) {
		after, err := b.snapshot(ctx)
		if err != nil {
			return false, err
		}
		left = b.baseline.leaks(after)
		return len(left) == 0, nil
	})
	if len(b.baseline.objects) > 0 {
		var stale []string
		for o := range b.baseline.objects {
			stale = append(stale, o)
		}
		sort.Strings(stale)
		fmt.Fprintf(b.o.Progress, "   note: %d objects labelled %s existed before this run (another run's leftovers?), e.g. %s\n", len(stale), fixtures.LabelRun, stale[0])
	}
	if err == nil {
		return nil
	}
	if len(left) == 0 {
		return err
	}
	shown := left
	if len(shown) > 20 {
		shown = append(shown[:20:20], fmt.Sprintf("... %d more", len(left)-20))
	}
	return errors.New("leak check: the run left " + fmt.Sprint(len(left)) + " things behind:\n  " + strings.Join(shown, "\n  "))
}
