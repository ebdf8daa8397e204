package runner

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
)

// Adaptations are the changes Transform made to catalog objects, each once, in the order first
// made. They are found by comparing what the backend received with the file, whatever the
// transform, so none can go unreported.
func (r *Runner) Adaptations() []report.Adaptation { return r.adaptations }

// noteAdaptations records how the objects given to the backend for one catalog object differ from
// it: field by field when it is still one object of the same identity, otherwise as a replacement.
func (r *Runner) noteAdaptations(res catalog.Resources, orig *unstructured.Unstructured, out []*unstructured.Unstructured) {
	if len(out) == 1 && out[0] == orig {
		return
	}
	a := report.Adaptation{Group: r.scenario.Metadata.Group, File: path.Join(r.scenario.Dir, res.File), Object: objectName(orig)}
	var changes []report.Adaptation
	if len(out) == 1 && objectName(out[0]) == a.Object && out[0].GetAPIVersion() == orig.GetAPIVersion() {
		for _, d := range diff("", orig.Object, out[0].Object) {
			c := a
			c.Field, c.Change = d.field, d.change
			changes = append(changes, c)
		}
	} else {
		names := make([]string, len(out))
		for i, o := range out {
			names[i] = objectName(o)
		}
		c := a
		c.Change = "replaced by " + strings.Join(names, ", ")
		if len(out) == 0 {
			c.Change = "not applied"
		}
		changes = append(changes, c)
	}
	for _, c := range changes {
		if r.seenAdaptation == nil {
			r.seenAdaptation = map[report.Adaptation]bool{}
		}
		if !r.seenAdaptation[c] {
			r.seenAdaptation[c] = true
			r.adaptations = append(r.adaptations, c)
		}
	}
}

func objectName(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

type fieldChange struct{ field, change string }

// diff lists the leaves where b differs from a, by path (spec.subsets[0].trafficPolicy.tls.sni).
func diff(at string, a, b any) []fieldChange {
	if reflect.DeepEqual(a, b) {
		return nil
	}
	join := func(k string) string {
		if at == "" {
			return k
		}
		return at + "." + k
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []fieldChange
		for _, k := range sorted {
			xv, inA := x[k]
			yv, inB := y[k]
			switch {
			case !inA:
				out = append(out, fieldChange{join(k), "added " + value(yv)})
			case !inB:
				out = append(out, fieldChange{join(k), "removed " + value(xv)})
			default:
				out = append(out, diff(join(k), xv, yv)...)
			}
		}
		return out
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			break
		}
		var out []fieldChange
		for i := range x {
			out = append(out, diff(fmt.Sprintf("%s[%d]", at, i), x[i], y[i])...)
		}
		return out
	}
	return []fieldChange{{at, value(a) + " -> " + value(b)}}
}

// value is v as JSON: strings quoted, maps and lists inline.
func value(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
