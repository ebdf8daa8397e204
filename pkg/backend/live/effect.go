package live

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/egressconf/egressconf/pkg/xdsprobe"
)

// A kind that a controller turns into Istio configuration (ASM's ASMEgressTrafficPolicy, served
// natively) cannot be followed into istiod by its own resource version: istiod never sees it, only
// the objects the controller writes. Convergence waits on that effect instead: istiod's config store
// must change, apart from the run's own objects, after the apply, and then read the same twice in a
// row (a controller writing its translation in several writes is not caught half done).

// translatedKind reports whether objects of group are read by a controller rather than istiod or
// Kubernetes itself: a CRD group that is not Istio's and not a Kubernetes API group.
func translatedKind(group string) bool {
	return strings.Contains(group, ".") && !strings.HasSuffix(group, "istio.io") && !strings.HasSuffix(group, ".k8s.io")
}

// configzSnapshot is istiod's config store as kind/namespace/name -> resourceVersion.
type configzSnapshot map[string]string

func configzKey(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

func parseConfigz(out []byte) (configzSnapshot, error) {
	var entries []configzEntry
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("istiod /debug/configz: %w", err)
	}
	s := configzSnapshot{}
	for _, e := range entries {
		s[configzKey(e.Kind, e.Metadata.Namespace, e.Metadata.Name)] = e.Metadata.ResourceVersion
	}
	return s, nil
}

// translation is what Converge knows of the pending translated objects.
type translation struct {
	objects []objRef
	// before is istiod's store when the first of them was applied or deleted.
	before configzSnapshot
	// last is the previous read of each istiod pod.
	last map[string]configzSnapshot
}

// without drops the run's own objects (those it applies itself, and the sentinel) from s.
func (t *translation) without(s configzSnapshot, own []istioChange) configzSnapshot {
	out := maps.Clone(s)
	for _, c := range own {
		delete(out, configzKey(c.ref.Kind, c.ref.Namespace, c.ref.Name))
	}
	delete(out, configzKey("ServiceEntry", xdsprobe.SentinelNamespace, xdsprobe.SentinelName))
	return out
}

// arrived reports whether now shows the controller's effect: changed since before (the run's own
// objects aside) and equal to the previous read.
func (t *translation) arrived(pod string, now configzSnapshot, own []istioChange) (bool, string) {
	cur := t.without(now, own)
	if t.last == nil {
		t.last = map[string]configzSnapshot{}
	}
	prev, seen := t.last[pod]
	t.last[pod] = cur
	switch {
	case maps.Equal(cur, t.without(t.before, own)):
		return false, fmt.Sprintf("istiod's configuration has not changed since %s: waiting for its controller's Istio objects", t.objects[0])
	case !seen || !maps.Equal(cur, prev):
		return false, fmt.Sprintf("istiod's configuration is still changing after %s", t.objects[0])
	}
	return true, ""
}

// noteTranslated records an apply or delete of a translated kind, reading istiod's store first
// when it is the first of the step.
func (b *Backend) noteTranslated(ctx context.Context, r objRef) error {
	p := &b.sc.pending
	if p.translated == nil {
		pods, err := b.istiodPods(ctx)
		if err != nil {
			return err
		}
		out, err := b.istiodDebug(ctx, &pods[0], "/debug/configz")
		if err != nil {
			return err
		}
		before, err := parseConfigz(out)
		if err != nil {
			return err
		}
		p.translated = &translation{before: before}
	}
	p.translated.objects = append(p.translated.objects, r)
	return nil
}
