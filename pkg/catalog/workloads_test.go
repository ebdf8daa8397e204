package catalog

import (
	"strings"
	"testing"
)

// workloadScenario is a valid scenario whose namespaces and workloads are the given YAML (at
// spec level, two-space indented); the probe runs from sleep@n.
func workloadScenario(namespacesAndWorkloads string) string {
	return `apiVersion: egressconf.io/v1alpha1
kind: Scenario
metadata: {name: t, group: T1}
spec:
  title: t
  profile: istio-native
  sources: [{doc: d}]
  meshPolicy: REGISTRY_ONLY
` + namespacesAndWorkloads + `
  steps:
    - name: one
      expect:
        - id: T-01
          kind: derived
          checks:
            - from: sleep@n
              curl: "curl -I http://www.aliyun.com"
              expect: {result: 502}
`
}

// TestValidateWorkloads: the httpbin fixture and labels are accepted; each bad workload or
// namespace field is refused with the file, the line and the field.
func TestValidateWorkloads(t *testing.T) {
	good := workloadScenario(`  namespaces:
    - name: n
      labels: {tier: frontend}
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
      serviceAccount: custom
      labels: {team: a, example.com/role: client}
    - name: httpbin
      namespace: n
      fixture: httpbin`)
	c, err := loadString(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Fatalf("valid scenario refused: %v", err)
	}
	if w, _ := c.Scenarios[0].Workload("httpbin@n"); w.SA() != "httpbin" {
		t.Errorf("httpbin's ServiceAccount defaults to %q, want its name", w.SA())
	}

	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"unknown fixture", `  namespaces: [{name: n}]
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
    - name: redis
      namespace: n
      fixture: redis`, []string{`scenario.yaml: line 16: spec.workloads[1].fixture: "redis", want sleep, nginx or httpbin`}},
		{"reserved workload labels", `  namespaces: [{name: n}]
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
      labels:
        app: other
        egressconf.io/run: x
        sidecar.istio.io/inject: "false"`, []string{
			`line 14: spec.workloads[0].labels: app is reserved`,
			`line 14: spec.workloads[0].labels: egressconf.io/run is reserved`,
			`line 14: spec.workloads[0].labels: sidecar.istio.io/inject is reserved: sidecar injection is set by the sidecar field`}},
		{"bad label value", `  namespaces: [{name: n}]
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
      labels: {team: "a b"}`, []string{`line 14: spec.workloads[0].labels: team: value "a b"`}},
		{"reserved namespace labels", `  namespaces:
    - name: n
      labels:
        istio-injection: enabled
        app.kubernetes.io/managed-by: me
  workloads: [{name: sleep, namespace: n, fixture: sleep}]`, []string{
			`line 11: spec.namespaces[0].labels: istio-injection is reserved: istio-injection is set by the injection field`,
			`line 11: spec.namespaces[0].labels: app.kubernetes.io/managed-by is reserved`}},
		{"sidecar in an uninjected namespace", `  namespaces: [{name: n, injection: false}]
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
      sidecar: true`, []string{`line 14: spec.workloads[0].sidecar: true, but namespace n has injection: false`}},
		{"undeclared namespace", `  namespaces: [{name: n}]
  workloads:
    - name: sleep
      namespace: n
      fixture: sleep
    - name: b
      namespace: elsewhere
      fixture: httpbin`, []string{`line 15: spec.workloads[1].namespace: namespace elsewhere is not declared`}},
		{"probe from httpbin", `  namespaces: [{name: n}]
  workloads:
    - {name: sleep, namespace: n, fixture: httpbin}`, []string{`checks[0].from: sleep@n is an httpbin fixture, whose image has no curl`}},
	} {
		c, err := loadString(t, workloadScenario(tc.spec))
		if err != nil {
			t.Errorf("%s: load: %v", tc.name, err)
			continue
		}
		err = Validate(c, ValidateOptions{})
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nwant it to contain %q", tc.name, err, w)
			}
		}
	}
}

// TestUninjectedNamespaceMeansNoSidecar: a workload in a namespace with injection: false has no
// sidecar unless it says otherwise, so every backend (reading HasSidecar) agrees with Istio.
func TestUninjectedNamespaceMeansNoSidecar(t *testing.T) {
	c, err := loadString(t, workloadScenario(`  namespaces: [{name: n, injection: false}, {name: m}]
  workloads:
    - {name: sleep, namespace: n, fixture: sleep}
    - {name: sleep, namespace: m, fixture: sleep}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := c.Scenarios[0]
	if w, _ := s.Workload("sleep@n"); w.HasSidecar() {
		t.Error("sleep@n in a namespace with injection: false has a sidecar")
	}
	if w, _ := s.Workload("sleep@m"); !w.HasSidecar() {
		t.Error("sleep@m in an injected namespace has no sidecar")
	}
}

// TestValidateNamesLines: scenario- and step-level errors name the line of their field too.
func TestValidateNamesLines(t *testing.T) {
	y := workloadScenario(`  namespaces: [{name: n}]
  workloads: [{name: sleep, namespace: n, fixture: sleep}]`)
	y = strings.Replace(y, "meshPolicy: REGISTRY_ONLY", "meshPolicy: NONE", 1)
	y = strings.Replace(y, "    - name: one\n", "    - name: one\n      remove: [ghost@n]\n", 1)
	c, err := loadString(t, y)
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(c, ValidateOptions{})
	for _, want := range []string{`line 8: spec.meshPolicy: "NONE"`, `line 13: spec.steps[0].remove[0]: unknown workload ghost@n`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
