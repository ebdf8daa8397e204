package istiovalidate

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
)

func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const serviceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: default}
spec:
  hosts: [www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
`

// TestUnknownSpecFieldsRefused: a field Istio's API lacks, at the top of the spec or nested, is an
// error naming it (the API server would prune it with only a warning); the valid object passes.
func TestUnknownSpecFieldsRefused(t *testing.T) {
	if err := Object(object(t, serviceEntry)); err != nil {
		t.Fatalf("valid ServiceEntry: %v", err)
	}
	for _, c := range []struct{ edit, want string }{
		{strings.Replace(serviceEntry, "  hosts:", "  hostz: [x]\n  hosts:", 1), `unknown field "hostz"`},
		{strings.Replace(serviceEntry, "number: 80", "nmber: 80", 1), `unknown field "nmber"`},
	} {
		err := Object(object(t, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "ServiceEntry") {
			t.Errorf("%v, want an error with %q", err, c.want)
		}
	}
	// Objects outside Istio's API groups are not judged here.
	if err := Object(object(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbogus: 1\n")); err != nil {
		t.Errorf("ConfigMap: %v", err)
	}
}
