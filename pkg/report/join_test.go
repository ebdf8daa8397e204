package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend"
)

func simRun(id, catalog string, results ...Result) *Run {
	r := oracleRun(id, off, "1.31", results...)
	r.Selection = &Selection{Catalog: catalog}
	return r
}

func TestJoinOffline(t *testing.T) {
	d := dualRun("e2e", dual("A", Fail, "200", Fail, "200"), dual("B", Pass, "403", Pass, "403"))
	d.Selection = &Selection{Catalog: "built-in"}
	src := simRun("ci-sim", "built-in", dres("A", Fail, "200"), dres("B", Pass, "403"), dres("C", Pass, "403"))
	if err := JoinOffline(d, src, "reports/ci-sim/results.json"); err != nil {
		t.Fatal(err)
	}
	a := d.Results[0]
	if p := a.PredictionBy(off); p == nil || p.Verdict != Fail || p.Observed != "200" || p.Run != "ci-sim" {
		t.Errorf("A: offline prediction %+v", p)
	}
	if a.PredictionBy(live) == nil || a.Verdict != Fail {
		t.Errorf("A: the join changed the live prediction or the verdict: %+v", a)
	}
	if len(d.Predictions) != 2 || d.Predictions[1].File != "reports/ci-sim/results.json" || d.Predictions[1].Backend != "sim" {
		t.Errorf("prediction sources %+v", d.Predictions)
	}
	// Joined twice: one offline prediction, not two.
	if err := JoinOffline(d, src, "x"); err != nil || len(d.Results[0].Predictions) != 2 || len(d.Predictions) != 2 {
		t.Errorf("joined twice: %v, %d predictions, %d sources", err, len(d.Results[0].Predictions), len(d.Predictions))
	}
}

func TestJoinOfflineRefusals(t *testing.T) {
	target := func() *Run {
		d := dualRun("e2e", dual("A", Pass, "403", Pass, "403"), dual("B", Pass, "403", Pass, "403"))
		d.Selection = &Selection{Catalog: "built-in"}
		return d
	}
	xds := oracleRun("ci-xds", live, "1.31", dres("A", Pass, "403"), dres("B", Pass, "403"))
	xds.Selection = &Selection{Catalog: "built-in"}
	otherExpected := simRun("ci-sim", "built-in", dres("A", Pass, "403"), dres("B", Pass, "403"))
	otherExpected.Results[1].Expected = "502"
	for _, c := range []struct {
		name string
		run  *Run
		src  *Run
		want string
	}{
		{"a non-sim run", target(), xds, `run "ci-xds" is backend kind (predicted-live-control-plane), not an offline run`},
		{"another catalog", target(), simRun("mine", "mydir", dres("A", Pass, "403"), dres("B", Pass, "403")), `run "mine" is of catalog "mydir", this run of catalog "built-in"`},
		{"missing IDs", target(), simRun("g1", "built-in", dres("A", Pass, "403")), `run "g1" has no result for 1 of the IDs this run selects: B`},
		{"other expectations", target(), otherExpected, `B ("502" there, "403" here)`},
		{"an offline run itself", simRun("s", "built-in", dres("A", Pass, "403")), simRun("ci-sim", "built-in", dres("A", Pass, "403")), "is itself an offline run"},
	} {
		err := JoinOffline(c.run, c.src, "reports/x/results.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--offline-from reports/x/results.json") {
			t.Errorf("%s: %v, want an error naming the flag, the file and %q", c.name, err, c.want)
		}
		for _, r := range c.run.Results {
			if r.PredictionBy(off) != nil {
				t.Errorf("%s: %s joined despite the error", c.name, r.ID)
			}
		}
	}
}

func TestReadRun(t *testing.T) {
	dir := t.TempDir()
	data, _ := json.Marshal(simRun("ci-sim", "built-in", dres("A", Pass, "403")))
	if err := os.WriteFile(filepath.Join(dir, ResultsFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run, file, err := ReadRun(dir)
	if err != nil || run.ID != "ci-sim" || file != filepath.Join(dir, ResultsFile) || run.Backend.Oracle != backend.OracleOffline {
		t.Errorf("ReadRun(dir) = %v, %s, %v", run, file, err)
	}
	if _, _, err := ReadRun(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing: %v", err)
	}
}

func TestPredictionTally(t *testing.T) {
	d := dualRun("e2e", dual("A", Pass, "403", Pass, "403"), dual("B", Fail, "502", Pass, "403"), Result{ID: "C", Verdict: Pass, Observed: "403"},
		dual("D", Pass, "403", Skip, ""), dual("E", Pass, "403", Error, "prediction did not run"))
	got := PredictionTally(d)
	want := "predicted-live-control-plane: 1 agree with the observed-live-data-plane, 1 differ, 1 skipped, 1 errors, 1 without a prediction (not part of the verdict; egressconf compare classifies them)"
	if len(got) != 1 || got[0] != want {
		t.Errorf("tally %q, want %q", got, want)
	}
	if got := PredictionTally(simRun("s", "built-in", dres("A", Pass, "403"))); len(got) != 0 {
		t.Errorf("a run without predictions: %q", got)
	}
}
