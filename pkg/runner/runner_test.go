package runner_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

func loadBasic(t *testing.T) *catalog.Scenario {
	t.Helper()
	c, err := catalog.LoadPaths("testdata/basic")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c.Scenarios[0]
}

func status(code int) outcome.Observed { return outcome.Observed{HTTPCode: code} }

// mesh answers like a REGISTRY_ONLY mesh: 200 for example.com while se.yaml is applied, else 502,
// and logs the gateway entry for each 200.
func mesh(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	if _, ok := b.Applied["se.yaml"]; ok && req.Host == "example.com" {
		b.Log("istio-egressgateway@istio-system", outcome.LogEntry{"upstream_cluster": "outbound|80||example.com"})
		return status(200), nil
	}
	return status(502), nil
}

func fastTimeouts() runner.Timeouts {
	t := runner.DefaultTimeouts()
	t.ProbeInterval = time.Millisecond
	t.NegativeHold = 20 * time.Millisecond
	t.Eventually = 200 * time.Millisecond
	t.AccessLog = 50 * time.Millisecond
	return t
}

func run(t *testing.T, b *fakebackend.Backend) (map[string]report.Result, string) {
	t.Helper()
	return runWith(t, b, runner.Options{})
}

// runWith runs the basic scenario on b with o (its backend, timeouts, progress and report
// directory set here) and returns the results by ID and the progress printed.
func runWith(t *testing.T, b *fakebackend.Backend, o runner.Options) (map[string]report.Result, string) {
	t.Helper()
	var out bytes.Buffer
	o.Backend, o.Timeouts, o.Progress, o.ReportDir = b, fastTimeouts(), &out, t.TempDir()
	r := runner.New(o)
	if err := r.RunScenario(context.Background(), loadBasic(t)); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Result{}
	for _, res := range r.Results() {
		got[res.ID] = res
	}
	return got, out.String()
}

func TestRunnerVerdictsAndOrder(t *testing.T) {
	b := fakebackend.New(mesh)
	got, progress := run(t, b)
	want := map[string]report.Verdict{
		"T-POS-01": report.Pass, "T-NEG-01": report.Pass, "T-NP-01": report.Skip,
		"T-LOG-01": report.Pass, "T-DEL-01": report.Pass,
	}
	for id, v := range want {
		if got[id].Verdict != v {
			t.Errorf("%s: verdict %s (%s), want %s", id, got[id].Verdict, got[id].Message, v)
		}
		if got[id].Oracle != "fake-unit-test-only" {
			t.Errorf("%s: oracle %q", id, got[id].Oracle)
		}
	}
	if !strings.Contains(got["T-NP-01"].Message, `lacks capability "networkpolicy"`) {
		t.Errorf("skip reason: %q", got["T-NP-01"].Message)
	}
	wantCalls := "setup T1,apply se.yaml,converge,converge,delete se.yaml,converge,teardown T1"
	if strings.Join(b.Calls, ",") != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(b.Calls, ","), wantCalls)
	}
	// A positive expectation needs PositiveSuccesses probes; a negative holds for a window.
	if n := got["T-POS-01"].Checks[0].Attempts; n != 3 {
		t.Errorf("positive probed %d times, want 3", n)
	}
	if n := got["T-NEG-01"].Checks[0].Attempts; n < 2 {
		t.Errorf("negative probed %d times, want a holding window", n)
	}
	for _, line := range []string{"== T1 basic", "step 1/3 register host", "ok   T-POS-01", "skip T-NP-01", "teardown"} {
		if !strings.Contains(progress, line) {
			t.Errorf("progress lacks %q:\n%s", line, progress)
		}
	}
}

func TestDeterministicBackendProbesOnce(t *testing.T) {
	b := fakebackend.New(mesh)
	b.Deterministic = true
	got, _ := run(t, b)
	if n := got["T-POS-01"].Checks[0].Attempts; n != 1 {
		t.Errorf("deterministic positive probed %d times, want 1", n)
	}
}

func TestNegativeThatBreaksFails(t *testing.T) {
	n := 0
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if req.Host == "blocked.example.com" {
			n++
			if n > 2 {
				return status(200), nil
			}
			return status(502), nil
		}
		return mesh(b, from, req)
	})
	got, _ := run(t, b)
	r := got["T-NEG-01"]
	if r.Verdict != report.Fail || !strings.Contains(r.Message, "then broke") {
		t.Fatalf("verdict %s %q, want fail that broke", r.Verdict, r.Message)
	}
	if _, err := os.Stat(filepath.Join(r.Diagnostics, "calls.txt")); err != nil {
		t.Errorf("diagnostics not collected: %v", err)
	}
}

func TestFlakyPositiveNeedsARun(t *testing.T) {
	n := 0
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if req.Host == "example.com" && b.Applied["se.yaml"].Key != "" {
			n++
			if n%2 == 0 {
				return status(503), nil
			}
			return status(200), nil
		}
		return mesh(b, from, req)
	})
	got, _ := run(t, b)
	if r := got["T-POS-01"]; r.Verdict != report.Fail {
		t.Fatalf("alternating 200/503 passed as %s; a positive needs 3 in a row", r.Verdict)
	}
}

func TestProbeThatDidNotRunIsAnError(t *testing.T) {
	b := fakebackend.New(func(*fakebackend.Backend, catalog.Workload, *probe.Request) (outcome.Observed, error) {
		return outcome.Observed{}, errors.New("exec: container sleep not found")
	})
	got, _ := run(t, b)
	for _, id := range []string{"T-POS-01", "T-NEG-01", "T-DEL-01"} {
		if got[id].Verdict != report.Error || !strings.Contains(got[id].Message, "container sleep not found") {
			t.Errorf("%s: %s %q, want error naming the exec failure", id, got[id].Verdict, got[id].Message)
		}
	}
}

func TestBrokenSetupErrorsEveryExpectation(t *testing.T) {
	b := fakebackend.New(mesh)
	b.SetupErr = errors.New("namespace demo: forbidden")
	got, _ := run(t, b)
	if len(got) != 5 {
		t.Fatalf("%d results, want all 5", len(got))
	}
	for id, r := range got {
		if r.Verdict != report.Error || !strings.Contains(r.Message, "forbidden") {
			t.Errorf("%s: %s %q", id, r.Verdict, r.Message)
		}
	}
	if b.Probes != 0 {
		t.Errorf("probed %d times after a failed setup", b.Probes)
	}
}

func TestUnobservableWorkloadIsSkippedNotPassed(t *testing.T) {
	b := fakebackend.New(mesh)
	b.NoObserve = map[string]string{"sleep@demo": "sidecar has no Envoy"}
	got, _ := run(t, b)
	if r := got["T-POS-01"]; r.Verdict != report.Skip || !strings.Contains(r.Message, "no Envoy") {
		t.Errorf("T-POS-01: %s %q", r.Verdict, r.Message)
	}
}

func TestMissingLogEntryFails(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if _, ok := b.Applied["se.yaml"]; ok && req.Host == "example.com" {
			return status(200), nil // no log entry written
		}
		return status(502), nil
	})
	got, _ := run(t, b)
	if r := got["T-LOG-01"]; r.Verdict != report.Fail || !strings.Contains(r.Message, "observed no entries") {
		t.Errorf("T-LOG-01: %s %q", r.Verdict, r.Message)
	}
}

// TestPanicInCheckIsAnErrorResult: a panic inside a check is an error naming it, and every ID
// still ends with exactly one result.
func TestPanicInCheckIsAnErrorResult(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if req.Host == "blocked.example.com" {
			panic("index out of range [3] with length 2")
		}
		return mesh(b, from, req)
	})
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	if err := r.RunScenario(context.Background(), loadBasic(t)); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, res := range r.Results() {
		count[res.ID]++
		if res.ID == "T-NEG-01" && (res.Verdict != report.Error || !strings.Contains(res.Message, "panic") || !strings.Contains(res.Message, "index out of range")) {
			t.Errorf("T-NEG-01: %s %q, want an error naming the panic", res.Verdict, res.Message)
		}
	}
	for _, id := range []string{"T-POS-01", "T-NEG-01", "T-NP-01", "T-LOG-01", "T-DEL-01"} {
		if count[id] != 1 {
			t.Errorf("%s has %d results, want exactly 1", id, count[id])
		}
	}
}

// TestExpectationAfterSkippedApplyIsSkipped: an expectation after a file skipped for a missing
// capability is skipped with that reason, unless it declares independentOf the file.
func TestExpectationAfterSkippedApplyIsSkipped(t *testing.T) {
	s := loadBasic(t)
	s.Spec.Steps[1].Expect[1].IndependentOf = nil // T-LOG-01 now depends on np.yaml
	b := fakebackend.New(mesh)
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	if err := r.RunScenario(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Result{}
	for _, res := range r.Results() {
		got[res.ID] = res
	}
	if g := got["T-LOG-01"]; g.Verdict != report.Skip || !strings.Contains(g.Message, "np.yaml was not applied") || g.Capability != "networkpolicy" {
		t.Errorf("T-LOG-01: %s %q (capability %q), want a skip naming np.yaml", g.Verdict, g.Message, g.Capability)
	}
	if g := got["T-DEL-01"]; g.Verdict != report.Pass {
		t.Errorf("T-DEL-01 declares independentOf np.yaml: %s %q", g.Verdict, g.Message)
	}
	if g := got["T-NP-01"]; g.Capability != "networkpolicy" {
		t.Errorf("T-NP-01 capability %q", g.Capability)
	}
}

// TestTeardownFailureIsRecorded: a failed teardown is kept for the reports.
func TestTeardownFailureIsRecorded(t *testing.T) {
	b := fakebackend.New(mesh)
	b.TeardownErr = errors.New("delete ServiceEntry demo/se: forbidden")
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	if err := r.RunScenario(context.Background(), loadBasic(t)); err == nil {
		t.Fatal("teardown failure not returned")
	}
	tf := r.TeardownFailures()
	if len(tf) != 1 || tf[0].Group != "T1" || !strings.Contains(tf[0].Error, "forbidden") {
		t.Errorf("teardown failures %+v", tf)
	}
}

func runLogAfter(t *testing.T, b *fakebackend.Backend) map[string]report.Result {
	t.Helper()
	c, err := catalog.LoadPaths("testdata/logafter")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	if err := r.RunScenario(context.Background(), c.Scenarios[0]); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Result{}
	for _, res := range r.Results() {
		got[res.ID] = res
	}
	return got
}

// A log check reads only the entries of the requests of the expectation it names: an entry with
// the same fields written in the same window for another request does not count.
func TestLogCheckIgnoresNeighbourEntries(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		// Another request's entry, logged while the probe runs; the probe's own request logs nothing.
		b.Log("sleep@demo", outcome.LogEntry{"upstream_cluster": "BlackHoleCluster", outcome.LogFieldProbe: "someone-else"})
		return status(502), nil
	})
	got := runLogAfter(t, b)
	if r := got["T-BLK-01"]; r.Verdict != report.Pass {
		t.Fatalf("T-BLK-01: %s %q", r.Verdict, r.Message)
	}
	if r := got["T-BLK-02"]; r.Verdict != report.Fail {
		t.Errorf("T-BLK-02 passed on a neighbour's entry: %s %q", r.Verdict, r.Message)
	}

	own := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		b.Log("sleep@demo", outcome.LogEntry{"upstream_cluster": "BlackHoleCluster"}) // tagged with this probe
		return status(502), nil
	})
	if r := runLogAfter(t, own)["T-BLK-02"]; r.Verdict != report.Pass {
		t.Errorf("T-BLK-02 with its own entry: %s %q", r.Verdict, r.Message)
	}
}

// A log check must not pass when the expectation whose requests it reads did not pass.
func TestLogCheckAfterFailedExpectationIsError(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		b.Log("sleep@demo", outcome.LogEntry{"upstream_cluster": "BlackHoleCluster"})
		return status(200), nil // T-BLK-01 wants 502: it fails
	})
	got := runLogAfter(t, b)
	if r := got["T-BLK-01"]; r.Verdict != report.Fail {
		t.Fatalf("T-BLK-01: %s %q", r.Verdict, r.Message)
	}
	if r := got["T-BLK-02"]; r.Verdict != report.Error || !strings.Contains(r.Message, "did not pass") {
		t.Errorf("T-BLK-02 after a failed T-BLK-01: %s %q, want error", r.Verdict, r.Message)
	}
}

// A log check of requests that were never made (the probe was out of model) is skipped with that
// reason: neither a pass nor an error of the log.
func TestLogCheckOfAnUnmadeRequestIsSkipped(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		return outcome.Observed{}, &outcome.OutOfModelError{Need: "mutual TLS to an external host"}
	})
	got := runLogAfter(t, b)
	if r := got["T-BLK-01"]; r.Verdict != report.Skip {
		t.Fatalf("T-BLK-01: %s %q, want skip", r.Verdict, r.Message)
	}
	if r := got["T-BLK-02"]; r.Verdict != report.Skip || !strings.Contains(r.Message, "were not made: out of model: mutual TLS to an external host") {
		t.Errorf("T-BLK-02 after an unmade T-BLK-01: %s %q, want skip naming the reason", r.Verdict, r.Message)
	}
}

// TestElapsedOnAPredictionIsSkipped: an elapsed-time expectation on an observation without a
// duration (a prediction) is skipped as out of model; on a measured one it passes or fails.
func TestElapsedOnAPredictionIsSkipped(t *testing.T) {
	for _, c := range []struct {
		unknown bool
		took    time.Duration
		want    report.Verdict
	}{{true, 0, report.Skip}, {false, 3 * time.Second, report.Pass}, {false, 9 * time.Second, report.Fail}} {
		b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
			o, err := mesh(b, from, req)
			o.Duration, o.DurationUnknown = c.took, c.unknown
			return o, err
		})
		b.Deterministic = true
		s := loadBasic(t)
		s.Spec.Steps[0].Expect[0].Checks[0].Expect.Elapsed = &outcome.Elapsed{Min: 2 * time.Second, Max: 5 * time.Second}
		r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), Progress: &bytes.Buffer{}, ReportDir: t.TempDir()})
		if err := r.RunScenario(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, res := range r.Results() {
			found = found || res.ID == "T-POS-01"
			if res.ID == "T-POS-01" && (res.Verdict != c.want || (c.unknown && !strings.Contains(res.Message, "out of model: elapsed time"))) {
				t.Errorf("duration unknown=%v took %s: %s %q, want %s", c.unknown, c.took, res.Verdict, res.Message, c.want)
			}
		}
		if !found {
			t.Fatal("T-POS-01 has no result")
		}
	}
}
