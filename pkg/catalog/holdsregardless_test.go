package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scenarioWith is a minimal valid scenario whose one expectation carries the given extra line.
func scenarioWith(extra string) string {
	return `apiVersion: egressconf.io/v1alpha1
kind: Scenario
metadata: {name: t, group: T1}
spec:
  title: t
  profile: istio-native
  sources: [{doc: d}]
  meshPolicy: REGISTRY_ONLY
  namespaces: [{name: n}]
  workloads: [{name: sleep, namespace: n, fixture: sleep}]
  steps:
    - name: one
      expect:
        - id: T-01
          kind: derived
` + extra + `
          checks:
            - from: sleep@n
              curl: "curl -I http://www.aliyun.com"
              expect: {result: 502}
`
}

// loadString loads a scenario from a catalog directory that has the built-in catalog's hosts.
func loadString(t *testing.T, yaml string) (*Catalog, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ScenarioFile), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, err := os.ReadFile(filepath.Join("..", "..", "suites", "catalog", HostsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HostsFile), hosts, 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadPaths(dir)
}

func TestHoldsRegardless(t *testing.T) {
	c, err := loadString(t, scenarioWith(`          holdsRegardless: the baseline before any change`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Fatalf("a declared reason: %v", err)
	}
	e := &c.Scenarios[0].Spec.Steps[0].Expect[0]
	if why, ok := e.RegardlessReason(); !ok || why != "the baseline before any change" {
		t.Errorf("RegardlessReason() = %q, %v", why, ok)
	}

	c, err = loadString(t, scenarioWith(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Scenarios[0].Spec.Steps[0].Expect[0].RegardlessReason(); ok {
		t.Error("an expectation without the field declares nothing")
	}

	for _, empty := range []string{`holdsRegardless: ""`, `holdsRegardless: "   "`} {
		c, err := loadString(t, scenarioWith("          "+empty))
		if err != nil {
			t.Fatal(err)
		}
		err = Validate(c, ValidateOptions{})
		if err == nil || !strings.Contains(err.Error(), "T-01") || !strings.Contains(err.Error(), "holdsRegardless: the reason") {
			t.Errorf("%s: error %v, want one naming T-01 and holdsRegardless", empty, err)
		}
	}
	for _, null := range []string{`holdsRegardless:`, `holdsRegardless: null`, `holdsRegardless: ~`} {
		_, err := loadString(t, scenarioWith("          "+null))
		if err == nil || !strings.Contains(err.Error(), "line 16: holdsRegardless") {
			t.Errorf("%s: error %v, want one naming line 16 and holdsRegardless", null, err)
		}
	}
}
