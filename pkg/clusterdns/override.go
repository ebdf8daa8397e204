package clusterdns

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Where CoreDNS's configuration lives on kind and on the local cluster.
const (
	DefaultNamespace = "kube-system"
	DefaultConfigMap = "coredns"
	CorefileKey      = "Corefile"
	// AnnotationOriginal holds the Corefile as it was before the override, on the ConfigMap
	// itself, so a later process can see (and a human can copy) what Restore puts back.
	AnnotationOriginal = "egressconf.io/original-corefile"
	// AnnotationRun names the run whose block the Corefile carries.
	AnnotationRun = "egressconf.io/dns-override-run"
)

// Option tunes Override and Restore.
type Option func(*options)

type options struct {
	namespace, name string
	runID           string
}

// WithRunID marks the block with the run id: Override is idempotent for the same run and refuses
// while another run's block is present; Restore then removes only that run's block.
func WithRunID(id string) Option { return func(o *options) { o.runID = id } }

// WithConfigMap names CoreDNS's ConfigMap (default kube-system/coredns).
func WithConfigMap(namespace, name string) Option {
	return func(o *options) { o.namespace, o.name = namespace, name }
}

func newOptions(opts []Option) options {
	o := options{namespace: DefaultNamespace, name: DefaultConfigMap}
	for _, f := range opts {
		f(&o)
	}
	return o
}

func (o options) owner() string {
	if o.runID == "" {
		return defaultOwner
	}
	return o.runID
}

// Override makes every name in hosts resolve, cluster-wide, to target (a Service's FQDN such as
// internet.egressconf-internet.svc.cluster.local) by adding an egressconf block to the root server
// block of CoreDNS's Corefile (see the package comment). It returns restore, which puts the
// original Corefile back exactly (when the Corefile is still what Override wrote; otherwise it
// removes only the egressconf lines, keeping other people's edits) and may be called more than
// once. Call restore also after a failure (defer it); a crashed run is cleaned up by Restore.
//
// Override is idempotent: with the same run, hosts and target it changes nothing. It refuses
// (*ConflictError) when the Corefile carries another run's egressconf block, a damaged one, or
// configuration for one of the hosts that egressconf did not write.
func Override(ctx context.Context, cs kubernetes.Interface, hosts []string, target string, opts ...Option) (restore func(context.Context) error, err error) {
	o := newOptions(opts)
	var original, written string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cs.CoreV1().ConfigMaps(o.namespace).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("clusterdns: get ConfigMap %s/%s: %w", o.namespace, o.name, err)
		}
		cur, ok := cm.Data[CorefileKey]
		if !ok {
			return fmt.Errorf("clusterdns: ConfigMap %s/%s has no %s key", o.namespace, o.name, CorefileKey)
		}
		base, owners, err := Strip(cur)
		if err != nil {
			return err
		}
		for _, ow := range owners {
			if ow != o.owner() {
				return &ConflictError{fmt.Sprintf("ConfigMap %s/%s already carries the egressconf block of run %s (another run is using this cluster, or one crashed: clean up with clusterdns.Restore)", o.namespace, o.name, ow)}
			}
		}
		next, err := Apply(base, hosts, target, o.owner())
		if err != nil {
			return err
		}
		original, written = base, next
		if next == cur && cm.Annotations[AnnotationOriginal] == base && cm.Annotations[AnnotationRun] == o.owner() {
			return nil
		}
		cm.Data[CorefileKey] = next
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationOriginal] = base
		cm.Annotations[AnnotationRun] = o.owner()
		_, err = cs.CoreV1().ConfigMaps(o.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		var ce *ConflictError
		if !errors.As(err, &ce) {
			err = fmt.Errorf("clusterdns: override %s/%s: %w", o.namespace, o.name, err)
		}
		return nil, err
	}
	restore = func(ctx context.Context) error {
		_, err := restoreCM(ctx, cs, o, func(cur string) (string, error) {
			if cur == written {
				return original, nil
			}
			return stripOwner(cur, o.owner())
		})
		return err
	}
	return restore, nil
}

// Restore removes the egressconf block from CoreDNS's Corefile, for cleaning up after a run
// that could not call its restore function. With WithRunID only that run's block is removed;
// without, any egressconf block is. It reports whether it changed anything.
func Restore(ctx context.Context, cs kubernetes.Interface, opts ...Option) (bool, error) {
	o := newOptions(opts)
	return restoreCM(ctx, cs, o, func(cur string) (string, error) {
		if o.runID == "" {
			s, _, err := Strip(cur)
			return s, err
		}
		return stripOwner(cur, o.runID)
	})
}

// stripOwner removes the block when it is owner's; another owner's block is left alone.
func stripOwner(cur, owner string) (string, error) {
	s, owners, err := Strip(cur)
	if err != nil {
		return "", err
	}
	for _, ow := range owners {
		if ow != owner {
			return cur, nil
		}
	}
	return s, nil
}

func restoreCM(ctx context.Context, cs kubernetes.Interface, o options, next func(cur string) (string, error)) (bool, error) {
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		changed = false
		cm, err := cs.CoreV1().ConfigMaps(o.namespace).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("clusterdns: get ConfigMap %s/%s: %w", o.namespace, o.name, err)
		}
		cur, ok := cm.Data[CorefileKey]
		if !ok {
			return fmt.Errorf("clusterdns: ConfigMap %s/%s has no %s key", o.namespace, o.name, CorefileKey)
		}
		n, err := next(cur)
		if err != nil {
			return err
		}
		_, remaining, err := Strip(n)
		if err != nil {
			return err
		}
		dropAnnotations := len(remaining) == 0 && hasOurAnnotations(cm, o)
		if n == cur && !dropAnnotations {
			return nil
		}
		cm.Data[CorefileKey] = n
		if dropAnnotations {
			delete(cm.Annotations, AnnotationOriginal)
			delete(cm.Annotations, AnnotationRun)
		}
		_, err = cs.CoreV1().ConfigMaps(o.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		changed = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("clusterdns: restore %s/%s: %w", o.namespace, o.name, err)
	}
	return changed, nil
}

// hasOurAnnotations: the ConfigMap carries Override's annotations, of o's run when o names one.
func hasOurAnnotations(cm *corev1.ConfigMap, o options) bool {
	run, hasRun := cm.Annotations[AnnotationRun]
	_, hasOriginal := cm.Annotations[AnnotationOriginal]
	if !hasRun && !hasOriginal {
		return false
	}
	return o.runID == "" || !hasRun || run == o.owner()
}
