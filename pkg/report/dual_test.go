package report

import (
	"slices"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend"
)

// dualRun is a --probe curl,xds run: each result observed, with the live istiod's prediction.
func dualRun(id string, results ...Result) *Run {
	for i := range results {
		results[i].Group, results[i].Expected, results[i].Oracle, results[i].Backend = "G1", "403", obs, "kind"
	}
	return &Run{ID: id, Backend: backend.Info{Name: "kind", Oracle: obs, IstioVersion: "1.31"}, Results: results,
		Predictions: []PredictionSource{{Oracle: live, Backend: "kind", IstioVersion: "1.31"}}}
}

// dual is an observed result with its live prediction.
func dual(id string, v Verdict, observed string, pv Verdict, predicted string) Result {
	return Result{ID: id, Verdict: v, Observed: observed, Checks: []CheckResult{{Description: "curl", Verdict: v, Observed: observed,
		Prediction: &Prediction{Oracle: live, Verdict: pv, Observed: predicted}}},
		Predictions: []Prediction{{Oracle: live, Verdict: pv, Observed: predicted, Message: "m"}}}
}

func TestDualRunCountsAsTwoOracles(t *testing.T) {
	sim := oracleRun("ci-sim", off, "1.31",
		dres("SAME", Pass, "403"), dres("DATA", Pass, "403"), dres("CTRL", Pass, "403"), dres("DRIFT", Fail, "200"),
		dres("ERR", Pass, "403"), Result{ID: "OOM", Verdict: Skip, Observed: "out of model", Message: "out of model: redirect"})
	d := dualRun("e2e",
		dual("SAME", Pass, "403", Pass, "403"),
		dual("DATA", Fail, "502", Pass, "403"),
		dual("CTRL", Pass, "403", Fail, "200"),
		dual("DRIFT", Fail, "200", Fail, "200"),
		dual("ERR", Pass, "403", Error, "prediction did not run"),
		dual("OOM", Pass, "403", Pass, "403"),
	)
	diff := NewDifferential(sim, d)
	if len(diff.Runs) != 3 || diff.Runs[2].ID != "e2e[predicted-live-control-plane]" || diff.Runs[2].Backend.Oracle != live {
		var ids []string
		for _, r := range diff.Runs {
			ids = append(ids, r.ID)
		}
		t.Fatalf("runs %v, want ci-sim, e2e and e2e's live prediction", ids)
	}
	want := map[string][]Class{
		"SAME": nil, "DATA": {ClassDataPlane}, "CTRL": {ClassDataPlane, ClassControlPlane},
		"DRIFT": {ClassDocDrift}, "ERR": {ClassUnclassified}, "OOM": {ClassModelGap},
	}
	for _, row := range diff.Rows {
		if !slices.Equal(row.Classes, want[row.ID]) {
			t.Errorf("%s: classes %v, want %v (%s)", row.ID, row.Classes, want[row.ID], strings.Join(row.Reasons, "; "))
		}
	}
	// The prediction's error is that oracle's error, named, never a pass.
	for _, row := range diff.Rows {
		if row.ID == "ERR" {
			r := row.Results[2]
			if r.Verdict != Error || r.Oracle != live || !strings.Contains(strings.Join(row.Reasons, " "), "ERROR") {
				t.Errorf("ERR: live view %s %s, reasons %v", r.Verdict, r.Oracle, row.Reasons)
			}
		}
	}
	// One dual run alone: observation and prediction classified against each other.
	alone := NewDifferential(d)
	if len(alone.Runs) != 2 {
		t.Fatalf("a dual run alone: %d views, want 2", len(alone.Runs))
	}
	for _, row := range alone.Rows {
		if row.ID == "DATA" && !row.Has(ClassDataPlane) {
			t.Errorf("dual run alone, DATA: %v", row.Classes)
		}
	}
}

func TestMissingPredictionIsAnError(t *testing.T) {
	d := dualRun("e2e", dual("A", Pass, "403", Pass, "403"), Result{ID: "B", Verdict: Pass, Observed: "403"})
	views := OracleViews(d)
	b := views[1].Results[1]
	if b.Verdict != Error || !strings.Contains(b.Message, "no prediction of predicted-live-control-plane recorded for B") {
		t.Errorf("B without a prediction: %s %q, want an error", b.Verdict, b.Message)
	}
}

func TestJoinedOfflineIsNotCountedTwice(t *testing.T) {
	sim := oracleRun("ci-sim", off, "1.31", dres("A", Fail, "200"))
	d := dualRun("e2e", dual("A", Fail, "200", Fail, "200"))
	d.Results[0].Predictions = append(d.Results[0].Predictions, Prediction{Oracle: off, Verdict: Fail, Observed: "200", Run: "ci-sim"})
	d.Predictions = append(d.Predictions, PredictionSource{Oracle: off, Run: "ci-sim", Backend: "sim"})
	// Alone, the joined run has three oracles: observed, live and offline.
	alone := NewDifferential(d)
	if len(alone.Runs) != 3 || alone.Runs[2].ID != "e2e[predicted-offline-control-plane from ci-sim]" {
		t.Fatalf("joined run alone: %d views", len(alone.Runs))
	}
	if !alone.Rows[0].Has(ClassDocDrift) {
		t.Errorf("joined run alone: %v, want documentation drift", alone.Rows[0].Classes)
	}
	// With ci-sim given too, its joined copy is dropped.
	both := NewDifferential(sim, d)
	if len(both.Runs) != 3 {
		t.Errorf("ci-sim and the run joined with it: %d views, want 3", len(both.Runs))
	}
}

func TestReportsOfADualRun(t *testing.T) {
	d := dualRun("e2e", dual("DATA", Fail, "502", Pass, "403"), dual("SAME", Pass, "403", Pass, "403"))
	d.Results[1].Predictions = append(d.Results[1].Predictions, Prediction{Oracle: off, Verdict: Pass, Observed: "403", Run: "ci-sim"})
	d.Predictions = append(d.Predictions, PredictionSource{Oracle: off, Run: "ci-sim", File: "reports/ci-sim/results.json", Backend: "sim"})
	cr := NewConformanceReport(d)
	if cr.APIVersion != "egressconf.io/v1alpha2" || len(cr.Tests) != 2 || len(cr.Predictions) != 2 {
		t.Fatalf("conformance report: %s, %d tests, %d prediction sources", cr.APIVersion, len(cr.Tests), len(cr.Predictions))
	}
	data := cr.Tests[0]
	if data.Documented != "403" || data.Observed == nil || data.Observed.Verdict != Fail || data.Observed.Outcome != "502" ||
		data.PredictedLiveControlPlane == nil || data.PredictedLiveControlPlane.Verdict != Pass || data.PredictedOffline != nil {
		t.Errorf("DATA: %+v", data)
	}
	if same := cr.Tests[1]; same.PredictedOffline == nil || same.PredictedOffline.Run != "ci-sim" {
		t.Errorf("SAME: offline %+v, want joined from ci-sim", same.PredictedOffline)
	}
	// The run's counts are the observation's: one failed, whatever was predicted.
	if cr.Summary.Failed != 1 || cr.Summary.Passed != 1 || cr.Summary.Result != ResultFailure {
		t.Errorf("summary %+v", cr.Summary)
	}
	var b strings.Builder
	if err := WriteSummary(&b, d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| ID | from | request | documented | predicted offline | predicted from the live control plane | observed | verdict | time |",
		"| DATA |  |  | 403 | — | PASS 403 | FAIL 502 | **FAIL** |",
		"| SAME |  |  | 403 | PASS 403 | PASS 403 | PASS 403 | pass |",
		"joined from run `ci-sim`", "never decide it",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	var j strings.Builder
	if err := WriteJUnit(&j, d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(j.String(), `predicted (predicted-live-control-plane): pass &#34;403&#34;`) || strings.Count(j.String(), "<failure") != 1 {
		t.Errorf("junit: the prediction is not said as one, or changed the cases:\n%s", j.String())
	}
	// report.html: a column per oracle, classified, under the run's own title.
	var h strings.Builder
	if err := writeRunHTML(&h, d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<title>egressconf run e2e: FAILED", "e2e[predicted-live-control-plane]", "e2e[predicted-offline-control-plane from ci-sim]", "data-plane divergence", "predictions recorded in run e2e beside its results"} {
		if !strings.Contains(h.String(), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}
