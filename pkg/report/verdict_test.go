package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/backend"
)

func fullSelection(ids ...string) *Selection {
	return &Selection{Catalog: "built-in", Scenarios: []string{"G1"}, SelectedIDs: ids, CatalogIDs: len(ids), Full: true}
}

func res(id string, v Verdict) Result {
	return Result{ID: id, Group: "G1", Scenario: "deny-namespace", Profile: "istio-native", Kind: "derived", Verdict: v, Backend: "sim", Oracle: backend.OracleOffline}
}

// outputs writes every report of run and returns what each says about the run as a whole.
type outputs struct {
	summary, conformance, junitResult string
	junitErrors                       int
	json                              Run
	raw                               map[string]string
}

func writeOutputs(t *testing.T, run *Run) outputs {
	t.Helper()
	dir := t.TempDir()
	if _, err := WriteAll(dir, run); err != nil {
		t.Fatal(err)
	}
	var o outputs
	o.raw = map[string]string{}
	for _, f := range []string{SummaryFile, ConformanceFile, JUnitFile, ResultsFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		o.raw[f] = string(data)
	}
	o.summary = o.raw[SummaryFile]
	var cr ConformanceReport
	if err := yaml.Unmarshal([]byte(o.raw[ConformanceFile]), &cr); err != nil {
		t.Fatal(err)
	}
	o.conformance = cr.Summary.Result
	var js junitSuites
	if err := xml.Unmarshal([]byte(o.raw[JUnitFile]), &js); err != nil {
		t.Fatal(err)
	}
	o.junitErrors = js.Failures + js.Errors
	for _, s := range js.Suites {
		for _, p := range s.Properties {
			if p.Name == "run.result" {
				o.junitResult = p.Value
			}
		}
	}
	if err := json.Unmarshal([]byte(o.raw[ResultsFile]), &o.json); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestVerdictWordsAgree: summary headline, conformance result, JUnit, results.json and the exit
// code all come from Decide, for each kind of run that used to read as a pass.
func TestVerdictWordsAgree(t *testing.T) {
	skipNoCap := res("DENYNS-02", Skip)
	skipNoCap.Message = "sleep@demo: sidecar has no Envoy"
	skipCap := res("DENYNS-05", Skip)
	skipCap.Message, skipCap.Capability = "backend lacks networkpolicy", "networkpolicy"
	var many []Result
	many = append(many, res("DENYNS-01", Pass))
	for i := 0; i < 61; i++ {
		r := skipNoCap
		r.ID = "X-" + string(rune('A'+i/26)) + string(rune('A'+i%26)) + "-01"
		many = append(many, r)
	}
	ids := func(rs []Result) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	cases := []struct {
		name     string
		results  []Result
		sel      *Selection
		word     string
		result   string
		exit     int
		junitErr bool
	}{
		{"0 passed 1 skipped", []Result{skipCap}, fullSelection("DENYNS-05"), "INCONCLUSIVE", ResultInconclusive, 0, false},
		{"1 pass 61 skips", many, fullSelection(ids(many)...), "PARTIAL", ResultPartial, 0, false},
		{"pass and capability skip", []Result{res("DENYNS-01", Pass), skipCap}, fullSelection("DENYNS-01", "DENYNS-05"), "PASSED", ResultSuccess, 0, false},
		{"no selection recorded", []Result{res("DENYNS-01", Pass)}, nil, "PARTIAL", ResultPartial, 0, false},
		{"no results at all", nil, &Selection{Catalog: "built-in", Scenarios: []string{"G1"}, EmptyScenarios: []string{"G1"}}, "INCONCLUSIVE", ResultInconclusive, 0, false},
		{"selected ID without result", []Result{res("DENYNS-01", Pass)}, fullSelection("DENYNS-01", "DENYNS-02"), "FAILED", ResultFailure, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := &Run{ID: "r", Backend: backend.Info{Name: "sim", Oracle: backend.OracleOffline}, Results: tc.results, Selection: tc.sel}
			d := Decide(run)
			if d.Word != tc.word || d.Result != tc.result || d.ExitCode != tc.exit {
				t.Fatalf("Decide = %+v, want %s %s exit %d", d, tc.word, tc.result, tc.exit)
			}
			o := writeOutputs(t, run)
			if !strings.Contains(o.summary, "**"+tc.word+"**") {
				t.Errorf("summary headline is not %s:\n%s", tc.word, o.summary)
			}
			if tc.word != "PASSED" && strings.Contains(o.summary, "**PASSED**") {
				t.Errorf("summary says PASSED")
			}
			if o.conformance != tc.result || o.junitResult != tc.result || o.json.Verdict == nil || o.json.Verdict.Result != tc.result || o.json.Verdict.ExitCode != tc.exit {
				t.Errorf("conformance %q, junit %q, results.json %+v; want %s", o.conformance, o.junitResult, o.json.Verdict, tc.result)
			}
			if (o.junitErrors > 0) != tc.junitErr {
				t.Errorf("JUnit has %d failures+errors, want errors=%v", o.junitErrors, tc.junitErr)
			}
		})
	}
}

// TestInterruptedRunInEveryReport: an interrupted run says so in every report, its not-run IDs
// are JUnit errors, and nothing reads as passed.
func TestInterruptedRunInEveryReport(t *testing.T) {
	notRun := res("DENYNS-02", Error)
	notRun.NotRun, notRun.Message = true, "not run: the run was interrupted"
	run := &Run{ID: "r", Backend: backend.Info{Name: "sim", Oracle: backend.OracleOffline}, Interrupted: true,
		Results: []Result{res("DENYNS-01", Pass), notRun}, Selection: fullSelection("DENYNS-01", "DENYNS-02")}
	d := Decide(run)
	if d.Result != ResultInterrupted || d.ExitCode != 130 {
		t.Fatalf("%+v", d)
	}
	o := writeOutputs(t, run)
	for f, text := range o.raw {
		if !strings.Contains(strings.ToLower(text), "interrupted") {
			t.Errorf("%s does not say interrupted:\n%s", f, text)
		}
	}
	if !strings.Contains(o.raw[JUnitFile], `type="not-run"`) || o.junitErrors == 0 {
		t.Errorf("JUnit lacks the not-run error:\n%s", o.raw[JUnitFile])
	}
	if !strings.Contains(o.summary, "**NOT RUN**") || strings.Contains(o.summary, "**PASSED**") {
		t.Errorf("summary:\n%s", o.summary)
	}
	if !o.json.Interrupted || o.conformance != ResultInterrupted {
		t.Errorf("results.json interrupted=%v, conformance %s", o.json.Interrupted, o.conformance)
	}
}

// TestTeardownFailureReachesReports: a failed teardown makes the run FAILED and is named.
func TestTeardownFailureReachesReports(t *testing.T) {
	run := &Run{ID: "r", Backend: backend.Info{Name: "sim", Oracle: backend.OracleOffline},
		Results: []Result{res("DENYNS-01", Pass)}, Selection: fullSelection("DENYNS-01"),
		TeardownFailures: []TeardownFailure{{Group: "G1", Scenario: "deny-namespace", Error: "delete ServiceEntry x: forbidden"}}}
	if d := Decide(run); d.Result != ResultFailure || d.ExitCode != 1 {
		t.Fatalf("%+v", d)
	}
	o := writeOutputs(t, run)
	for f, text := range o.raw {
		if !strings.Contains(text, "forbidden") {
			t.Errorf("%s does not name the failed teardown:\n%s", f, text)
		}
	}
	if o.junitErrors != 1 || !strings.Contains(o.raw[JUnitFile], `name="teardown G1"`) {
		t.Errorf("JUnit: %d errors\n%s", o.junitErrors, o.raw[JUnitFile])
	}
	if !strings.Contains(o.summary, "**FAILED**") {
		t.Errorf("summary:\n%s", o.summary)
	}
}

// TestSubsetIsNeverFullConformance: a subset names its selection and reads partial.
func TestSubsetIsNeverFullConformance(t *testing.T) {
	run := &Run{ID: "r", Started: time.Now(), Finished: time.Now(), Backend: backend.Info{Name: "sim", Oracle: backend.OracleOffline},
		Results:   []Result{res("DENYNS-01", Pass)},
		Selection: &Selection{Catalog: "built-in", IDs: []string{"DENYNS-01"}, Scenarios: []string{"G1"}, SelectedIDs: []string{"DENYNS-01"}, CatalogIDs: 62},
		Settings:  map[string]string{"positive-successes": "3", "negative-hold": "5s"}}
	o := writeOutputs(t, run)
	if o.conformance != ResultPartial || !strings.Contains(o.summary, "**PARTIAL**") || !strings.Contains(o.summary, "1 of 62 IDs") || !strings.Contains(o.summary, "--id DENYNS-01") {
		t.Errorf("conformance %s, summary:\n%s", o.conformance, o.summary)
	}
	var cr ConformanceReport
	if err := yaml.Unmarshal([]byte(o.raw[ConformanceFile]), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Selection == nil || cr.Selection.CatalogIDs != 62 || len(cr.Selection.SelectedIDs) != 1 || cr.Selection.Full {
		t.Errorf("conformance selection %+v", cr.Selection)
	}
	if cr.Settings["negative-hold"] != "5s" || o.json.Settings["positive-successes"] != "3" {
		t.Errorf("settings not recorded: %v %v", cr.Settings, o.json.Settings)
	}
	if !strings.Contains(o.summary, "--negative-hold=5s") {
		t.Errorf("summary lacks settings:\n%s", o.summary)
	}
	var b bytes.Buffer
	if err := WriteConformance(&b, run); err != nil || !strings.Contains(b.String(), "catalogIDs: 62") {
		t.Errorf("%v\n%s", err, b.String())
	}
}
