package addons

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	// Several documents: a client-go kind (decoded typed), an empty and a comment-only document
	// (skipped), a kind client-go does not know (unstructured), and a DaemonSet.
	os.WriteFile(good, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: kube-system\n---\n---\n# only a comment\n---\n"+
		"apiVersion: example.io/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n---\n"+
		"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\n  namespace: kube-system\nspec:\n  selector:\n    matchLabels: {app: d}\n"), 0o644)
	objs, err := Load([]string{good})
	if err != nil || len(objs) != 3 {
		t.Fatalf("%d objects, %v", len(objs), err)
	}
	if got := objs[2].Ref(); got != "DaemonSet kube-system/d ("+good+")" {
		t.Fatalf("Ref = %q", got)
	}
	if got, _, _ := unstructured.NestedInt64(objs[1].Obj.Object, "spec", "size"); got != 3 || objs[1].Obj.GetAPIVersion() != "example.io/v1" {
		t.Fatalf("unknown kind not kept whole: %v", objs[1].Obj.Object)
	}
	// A typed object is sent as the file has it: apiVersion and kind kept, no zero status or
	// null creationTimestamp added.
	ds := objs[2].Obj
	if ds.GetAPIVersion() != "apps/v1" || ds.GetKind() != "DaemonSet" {
		t.Fatalf("typed object lost its type: %v", ds.Object)
	}
	if _, ok := ds.Object["status"]; ok {
		t.Errorf("status added: %v", ds.Object)
	}
	if _, ok, _ := unstructured.NestedFieldNoCopy(ds.Object, "metadata", "creationTimestamp"); ok {
		t.Errorf("creationTimestamp added: %v", ds.Object)
	}
	if got, _, _ := unstructured.NestedString(ds.Object, "spec", "selector", "matchLabels", "app"); got != "d" {
		t.Errorf("spec lost: %v", ds.Object)
	}
	for body, want := range map[string]string{
		"kind: X\nmetadata:\n  name: a\n": "object 1: Object 'apiVersion' is missing",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n": "object 2: ConfigMap: no metadata.name",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: [\n":                       "object 2: ",
		"apiVersion: v1\nmetadata:\n  name: a\n": "no object (a document without kind is skipped)",
		"":                                       "no object",
	} {
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte(body), 0o644)
		if _, err := Load([]string{bad}); err == nil || !strings.HasPrefix(err.Error(), "manifest "+bad+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %s and %q", body, err, bad, want)
		}
	}
	if _, err := Load([]string{filepath.Join(dir, "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDaemonSetReady(t *testing.T) {
	d := &appsv1.DaemonSet{}
	d.Generation = 2
	d.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 1, NumberReady: 1, UpdatedNumberScheduled: 1}
	if ok, msg := daemonSetReady(d); !ok || msg != "1/1 pods ready, 1 updated" {
		t.Fatalf("ready DaemonSet: %v %q", ok, msg)
	}
	for _, mod := range []func(*appsv1.DaemonSet){
		func(d *appsv1.DaemonSet) { d.Status.ObservedGeneration = 1 },
		func(d *appsv1.DaemonSet) { d.Status.NumberReady = 0 },
		func(d *appsv1.DaemonSet) { d.Status.UpdatedNumberScheduled = 0 },
		func(d *appsv1.DaemonSet) { d.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2} }, // nothing scheduled yet
	} {
		c := d.DeepCopy()
		mod(c)
		if ok, _ := daemonSetReady(c); ok {
			t.Errorf("not ready but accepted: %+v", c.Status)
		}
	}
}
