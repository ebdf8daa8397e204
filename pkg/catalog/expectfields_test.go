package catalog

import (
	"strings"
	"testing"
	"time"
)

// probeScenario is a minimal scenario with one probe whose curl and expect are given.
func probeScenario(curl, expect string) string {
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
          checks:
            - from: sleep@n
              curl: '` + curl + `'
              expect: ` + expect + `
`
}

// TestExpectationFields: exitCode, elapsed, hops and first load as written; a bound that is
// negative or inverted, an exit code no result can show, a chain without -L are validate errors
// naming the file, the line, the ID and the field; a malformed duration is a load error naming
// its line.
func TestExpectationFields(t *testing.T) {
	c, err := loadString(t, probeScenario("time curl -sSL -m 5 http://www.aliyun.com",
		`{result: 504, elapsed: {min: 2s, max: 4500ms}, exitCode: 0, hops: [{status: 301, headers: {location: "https://www.aliyun.com/"}}, {status: 504}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Fatalf("valid fields: %v", err)
	}
	e := c.Scenarios[0].Spec.Steps[0].Expect[0].Checks[0].Expect
	if e.Elapsed.Min != 2*time.Second || e.Elapsed.Max != 4500*time.Millisecond || *e.ExitCode != 0 || len(e.Hops) != 2 || e.Hops[0].Headers["location"] != "https://www.aliyun.com/" {
		t.Errorf("loaded %+v", e)
	}

	for _, c := range []struct{ curl, expect, want string }{
		{"curl http://h/", "{result: 504, elapsed: {min: -1s}}", "line 14 T-01 (spec.steps[0].expect[0]).checks[0].expect.elapsed.min: -1s is negative"},
		{"curl http://h/", "{result: 504, elapsed: {max: -2s}}", "expect.elapsed.max: -2s is negative"},
		{"curl http://h/", "{result: 504, elapsed: {min: 5s, max: 2s}}", "expect.elapsed: min 5s is above max 2s"},
		{"curl http://h/", "{result: 504, elapsed: {}}", "expect.elapsed: give min, max or both"},
		{"curl http://h/", "{result: timeout, exitCode: 7}", "expect.exitCode: 7 can never go with result timeout"},
		{"curl http://h/", "{result: 200, exitCode: 28}", "expect.exitCode: 28 can never go with result 200"},
		{"curl http://h/", "{result: reset, exitCode: -1}", "expect.exitCode: -1, want a process exit code"},
		{"curl http://h/", "{result: 200, hops: [{status: 301}, {status: 200}]}", "expect.hops: 2 responses, but the curl has no -L"},
		{"curl -L http://h/", "{result: 200, hops: [{status: 100}, {status: 200}]}", "expect.hops[0].status: 100"},
		{"curl -L http://h/", "{result: 200, first: {status: 301}, hops: [{status: 301}, {status: 200}]}", "expect.first: give hops"},
	} {
		cat, err := loadString(t, probeScenario(c.curl, c.expect))
		if err != nil {
			t.Errorf("%s: load: %v", c.expect, err)
			continue
		}
		err = Validate(cat, ValidateOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "scenario.yaml: line 14 T-01") {
			t.Errorf("%s: %v, want an error with the file, line and %q", c.expect, err, c.want)
		}
	}
	for _, c := range []struct{ expect, want string }{
		{"{result: 504, elapsed: {min: 2}}", `line 19: elapsed.min: "2" is not a duration`},
		{"{result: 504, elapsed: {mn: 2s}}", "line 19: elapsed: field mn is not a known field here"},
		{"{result: 504, elapsed: 3s}", "line 19: elapsed: want {min: DURATION, max: DURATION}"},
		{"{result: 504, hops: [{status: 301, extra: 1}]}", "field extra"},
	} {
		_, err := loadString(t, probeScenario("curl -L http://h/", c.expect))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "scenario.yaml") {
			t.Errorf("%s: %v, want a load error with the file and %q", c.expect, err, c.want)
		}
	}
}
