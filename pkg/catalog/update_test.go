package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateLaterFileUpdatesAnObject: a later file that updates an object an earlier file
// created is valid, and so is deleting both files in either order (the backends apply and delete
// as kubectl does); a delete of a file not applied, never or no longer, stays an error.
func TestValidateLaterFileUpdatesAnObject(t *testing.T) {
	se := func(host string) string {
		return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se, namespace: istio-system}\n" +
			"spec: {hosts: [" + host + "], location: MESH_EXTERNAL, resolution: DNS, ports: [{number: 80, name: http, protocol: HTTP}]}\n"
	}
	head := scenarioYAML + "spec:\n  title: t\n  profile: istio-native\n  sources: [{doc: d}]\n  meshPolicy: REGISTRY_ONLY\n" +
		"  namespaces: [{name: t1}]\n  workloads: [{name: sleep, namespace: t1, fixture: sleep}]\n  steps:\n" +
		"  - {name: first, apply: [{file: a.yaml}]}\n  - {name: update, apply: [{file: b.yaml}]}\n"
	for _, c := range []struct{ name, steps, want string }{
		{"update then delete the earlier file first", "  - {name: d1, delete: [{file: a.yaml}]}\n  - {name: d2, delete: [{file: b.yaml}]}\n", ""},
		{"update then delete the later file first", "  - {name: d1, delete: [{file: b.yaml}]}\n  - {name: d2, delete: [{file: a.yaml}]}\n", ""},
		{"delete of a file never applied", "  - {name: d1, delete: [{file: c.yaml}]}\n", "spec.steps[2].delete[0]: c.yaml was not applied by an earlier step"},
		{"second delete of a file", "  - {name: d1, delete: [{file: a.yaml}]}\n  - {name: d2, delete: [{file: a.yaml}]}\n", "spec.steps[3].delete[0]: a.yaml was not applied by an earlier step"},
	} {
		dir := t.TempDir()
		for name, content := range map[string]string{ScenarioFile: head + c.steps, "a.yaml": se("www.aliyun.com"), "b.yaml": se("www.alibabacloud.com"), "c.yaml": se("x.example")} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cat, err := LoadPaths(dir)
		if err != nil {
			t.Fatalf("%s: load: %v", c.name, err)
		}
		err = Validate(cat, ValidateOptions{})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
