package conformance_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/suites"
)

// TestMain runs a conformance run in a child process when asked (Ginkgo runs one suite per
// process): EGRESSCONF_CANCEL_AFTER=N cancels the run's context once N results are recorded.
func TestMain(m *testing.M) {
	if dir := os.Getenv("EGRESSCONF_CANCEL_REPORTS"); dir != "" {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		_, _, err := conformance.Run(nil, conformance.Options{
			Backend: sim.New(), ReportsDir: dir, RunID: "cancelled", Context: ctx, Groups: []string{"G1", "G2"},
			Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true}),
			OnResult: func(report.Result) {
				if n++; n == 2 {
					cancel()
				}
			},
		})
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCancelledRunListsEveryIDNotRun: a run whose context is cancelled after two results says
// interrupted, and lists every other selected ID as an error that did not run.
func TestCancelledRunListsEveryIDNotRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the offline backend in a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EGRESSCONF_CANCEL_REPORTS="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cancelled", report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var run report.Run
	if err := json.Unmarshal(data, &run); err != nil {
		t.Fatal(err)
	}
	if !run.Interrupted || run.Verdict == nil || run.Verdict.Result != report.ResultInterrupted || run.Verdict.ExitCode != 130 {
		t.Fatalf("interrupted %v verdict %+v", run.Interrupted, run.Verdict)
	}
	if len(run.Results) != 12 {
		t.Fatalf("%d results, want one for each of the 12 IDs of G1 and G2", len(run.Results))
	}
	ran, notRun := 0, 0
	seen := map[string]bool{}
	for _, r := range run.Results {
		if seen[r.ID] {
			t.Errorf("%s twice", r.ID)
		}
		seen[r.ID] = true
		if r.NotRun {
			notRun++
			if r.Verdict != report.Error || !strings.Contains(r.Message, "interrupted") {
				t.Errorf("%s: %s %q", r.ID, r.Verdict, r.Message)
			}
		} else {
			ran++
		}
	}
	if ran != 2 || notRun != 10 {
		t.Errorf("%d ran, %d not run; want 2 and 10", ran, notRun)
	}
}

// TestSelectDeduplicatesGroups: a group named by ID and by name is selected once.
func TestSelectDeduplicatesGroups(t *testing.T) {
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	sel, err := conformance.Select(c, []string{"G1", "deny-namespace", "G2", "G1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Scenarios) != 2 || len(sel.IDs()) != 12 {
		t.Errorf("%d scenarios, %d IDs; want 2 and 12", len(sel.Scenarios), len(sel.IDs()))
	}
	s := conformance.NewSelection("built-in", c, sel, []string{"G1", "G1"}, []string{"DENYNS-01", "DENYNS-01"})
	if len(s.SelectedIDs) != 1 || s.Full || s.CatalogIDs != 62 || len(s.Groups) != 1 || len(s.IDs) != 1 {
		t.Errorf("%+v", s)
	}
	if all := conformance.NewSelection("built-in", c, c, nil, nil); !all.Full || len(all.SelectedIDs) != 62 {
		t.Errorf("whole catalog %+v", all)
	}
	// A scenario without expectations (steps: []) makes even an unfiltered run a subset.
	empty := &catalog.Catalog{Scenarios: append([]*catalog.Scenario{{Metadata: catalog.Metadata{Name: "empty", Group: "G99"}}}, c.Scenarios...)}
	if s := conformance.NewSelection("custom", empty, empty, nil, nil); s.Full || len(s.EmptyScenarios) != 1 {
		t.Errorf("with an empty scenario %+v", s)
	}
}

func TestValidateRunID(t *testing.T) {
	for _, bad := range []string{"../../x", "..", ".", "a/b", `a\b`, "", "/abs", "x..y"} {
		if conformance.ValidateRunID(bad) == nil {
			t.Errorf("run ID %q accepted", bad)
		}
	}
	for _, ok := range []string{"20260101-120000-sim", "my_run.1"} {
		if err := conformance.ValidateRunID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
