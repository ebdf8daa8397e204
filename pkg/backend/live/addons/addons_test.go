package addons

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: kube-system\n---\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\n  namespace: kube-system\n"), 0o644)
	objs, err := Load([]string{good})
	if err != nil || len(objs) != 2 {
		t.Fatalf("%d objects, %v", len(objs), err)
	}
	if got := objs[1].Ref(); got != "DaemonSet kube-system/d ("+good+")" {
		t.Fatalf("Ref = %q", got)
	}
	for body, want := range map[string]string{
		"kind: X\nmetadata:\n  name: a\n":                 "document 1: no apiVersion",
		"apiVersion: v1\nmetadata:\n  name: a\n":          "document 1: no kind",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n": "document 1 (ConfigMap): no metadata.name",
		"apiVersion: v1\nkind: [\n":                       "document 1",
	} {
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte(body), 0o644)
		if _, err := Load([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), want) {
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
	if ok, msg, _ := daemonSetReady(d); !ok || msg != "1/1 pods ready, 1 updated" {
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
		if ok, _, _ := daemonSetReady(c); ok {
			t.Errorf("not ready but accepted: %+v", c.Status)
		}
	}
}
