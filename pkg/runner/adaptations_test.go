package runner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/runner"
)

// adaptationsOf runs the basic scenario (se.yaml applied, then deleted) with transform and returns
// the adaptations the runner lists, one a line.
func adaptationsOf(t *testing.T, transform func(*unstructured.Unstructured) ([]*unstructured.Unstructured, error)) string {
	t.Helper()
	r := runner.New(runner.Options{Backend: fakebackend.New(mesh), Timeouts: fastTimeouts(), ReportDir: t.TempDir(), Transform: transform})
	if err := r.RunScenario(context.Background(), loadBasic(t)); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range r.Adaptations() {
		lines = append(lines, a.Group+" "+a.String())
	}
	return strings.Join(lines, "\n")
}

// TestAdaptationsNameObjectFieldAndChange: whatever the transform does, what the backend received
// is compared with the file: each changed field once (the apply and the delete of the same file
// are one), a replaced object with what replaced it, an unchanged object not at all.
func TestAdaptationsNameObjectFieldAndChange(t *testing.T) {
	same := func(o *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
		return []*unstructured.Unstructured{o}, nil
	}
	if got := adaptationsOf(t, same); got != "" {
		t.Errorf("unchanged objects listed:\n%s", got)
	}
	edit := func(o *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
		c := o.DeepCopy()
		_ = unstructured.SetNestedField(c.Object, "MESH_INTERNAL", "spec", "location")
		ports, _, _ := unstructured.NestedSlice(c.Object, "spec", "ports")
		ports[0].(map[string]any)["targetPort"] = int64(8080)
		_ = unstructured.SetNestedSlice(c.Object, ports, "spec", "ports")
		unstructured.RemoveNestedField(c.Object, "spec", "resolution")
		return []*unstructured.Unstructured{c}, nil
	}
	want := `T1 se.yaml: ServiceEntry default/example spec.location: "MESH_EXTERNAL" -> "MESH_INTERNAL"
T1 se.yaml: ServiceEntry default/example spec.ports[0].targetPort: added 8080
T1 se.yaml: ServiceEntry default/example spec.resolution: removed "DNS"`
	if got := adaptationsOf(t, edit); got != want {
		t.Errorf("edited:\n%s\nwant:\n%s", got, want)
	}
	inPlace := func(o *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
		o.SetLabels(map[string]string{"a": "b"})
		return []*unstructured.Unstructured{o}, nil
	}
	if got, want := adaptationsOf(t, inPlace), `T1 se.yaml: ServiceEntry default/example metadata.labels: added {"a":"b"}`; got != want {
		t.Errorf("changed in place:\n%s\nwant:\n%s", got, want)
	}
	replace := func(o *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
		var out []*unstructured.Unstructured
		for i := range 2 {
			c := o.DeepCopy()
			c.SetName(fmt.Sprintf("%s-%d", o.GetName(), i))
			out = append(out, c)
		}
		return out, nil
	}
	if got, want := adaptationsOf(t, replace), "T1 se.yaml: ServiceEntry default/example: replaced by ServiceEntry default/example-0, ServiceEntry default/example-1"; got != want {
		t.Errorf("replaced:\n%s\nwant:\n%s", got, want)
	}
}
