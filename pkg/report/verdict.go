package report

import (
	"fmt"
	"strings"
)

// Run-level results, in the conformance report's summary.result and in results.json's verdict.
const (
	// ResultSuccess: the full catalog was selected, every selected ID ended with exactly one
	// result, at least one passed, none failed or erred, every skip is a capability the backend
	// declares it lacks, every teardown succeeded, and the run was not interrupted.
	ResultSuccess = "success"
	// ResultPartial: nothing failed and something passed, but the run does not cover what a full
	// pass needs: a subset was selected, or an expectation was skipped for another reason than a
	// missing capability (a sidecar without Envoy, a part of Envoy the model does not cover).
	ResultPartial = "partial"
	// ResultFailure: something failed or erred (including a selected ID that did not run, a
	// failed teardown, a duplicate or missing result).
	ResultFailure = "failure"
	// ResultInconclusive: nothing failed, but nothing passed either (every result a skip, or no
	// expectation selected): the run shows nothing about the mesh.
	ResultInconclusive = "inconclusive"
	// ResultInterrupted: the run was interrupted (Ctrl-C, SIGTERM, a cancelled context); the IDs
	// that did not run are errors.
	ResultInterrupted = "interrupted"
)

// Decision is the verdict of a whole run. Every output derives from it: summary.md's headline,
// the conformance report's summary.result, JUnit's run.result property (and an error case when the
// run is not passed but no case says so), results.json's verdict and the command's exit code.
type Decision struct {
	// Result is success, partial, inconclusive, failure or interrupted.
	Result string `json:"result" yaml:"result"`
	// Word is the headline: PASSED, PARTIAL, INCONCLUSIVE, FAILED or INTERRUPTED.
	Word string `json:"word" yaml:"word"`
	// ExitCode is 0 for success, partial and inconclusive (nothing failed), 1 for failure, 130
	// for interrupted.
	ExitCode int `json:"exitCode" yaml:"exitCode"`
	// Reasons say why the run is not a success.
	Reasons []string `json:"reasons,omitempty" yaml:"reasons,omitempty"`
}

// Passed reports whether the exit code is 0 (nothing failed; only success is a full pass).
func (d Decision) Passed() bool { return d.ExitCode == 0 }

// Decide is the one rule that turns a run into its verdict (see Decision and README, "What a
// result means").
func Decide(run *Run) Decision {
	var reasons []string
	c := run.Counts()
	failure := false
	fail := func(format string, args ...any) {
		failure = true
		reasons = append(reasons, fmt.Sprintf(format, args...))
	}
	if run.Interrupted {
		reasons = append(reasons, "the run was interrupted")
	}
	if c.Failed > 0 {
		fail("%d failed", c.Failed)
	}
	if c.Errored > 0 {
		notRun := 0
		for _, r := range run.Results {
			if r.Verdict == Error && r.NotRun {
				notRun++
			}
		}
		if notRun > 0 {
			fail("%d errors (%d of them did not run)", c.Errored, notRun)
		} else {
			fail("%d errors", c.Errored)
		}
	}
	for _, t := range run.TeardownFailures {
		fail("teardown of %s failed: %s", t.Group, t.Error)
	}
	seen := map[string]int{}
	for _, r := range run.Results {
		seen[r.ID]++
	}
	var dups []string
	for _, r := range run.Results {
		if seen[r.ID] > 1 && !contains(dups, r.ID) {
			dups = append(dups, r.ID)
		}
	}
	if len(dups) > 0 {
		fail("more than one result for %s", strings.Join(dups, ", "))
	}
	if run.Selection != nil {
		var missing []string
		for _, id := range run.Selection.SelectedIDs {
			if seen[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			fail("no result for selected %s", strings.Join(missing, ", "))
		}
	}
	inconclusive := false
	if c.Passed == 0 {
		inconclusive = true
		reasons = append(reasons, fmt.Sprintf("nothing passed (%d results, %d skipped)", c.Total(), c.Skipped))
	}
	partial := false
	if n := otherSkips(run.Results); n > 0 {
		partial = true
		reasons = append(reasons, fmt.Sprintf("%d skipped for another reason than a missing capability", n))
	}
	switch s := run.Selection; {
	case s == nil:
		partial = true
		reasons = append(reasons, "the selection was not recorded")
	case !s.Full:
		partial = true
		reasons = append(reasons, "a subset: "+s.Describe())
	}
	switch {
	case run.Interrupted:
		return Decision{Result: ResultInterrupted, Word: "INTERRUPTED", ExitCode: 130, Reasons: reasons}
	case failure:
		return Decision{Result: ResultFailure, Word: "FAILED", ExitCode: 1, Reasons: reasons}
	case inconclusive:
		return Decision{Result: ResultInconclusive, Word: "INCONCLUSIVE", ExitCode: 0, Reasons: reasons}
	case partial:
		return Decision{Result: ResultPartial, Word: "PARTIAL", ExitCode: 0, Reasons: reasons}
	}
	return Decision{Result: ResultSuccess, Word: "PASSED", ExitCode: 0}
}

// decideCounts is Decide for one profile of a run: its counts, and the run's interruption and
// selection.
func decideCounts(run *Run, results []Result) string {
	var c Counts
	for _, r := range results {
		c.Add(r.Verdict)
	}
	switch {
	case run.Interrupted:
		return ResultInterrupted
	case c.Failed > 0 || c.Errored > 0:
		return ResultFailure
	case c.Passed == 0:
		return ResultInconclusive
	case otherSkips(results) > 0 || run.Selection == nil || !run.Selection.Full:
		return ResultPartial
	}
	return ResultSuccess
}

// otherSkips counts skips that are not a capability the backend declares it lacks.
func otherSkips(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Verdict == Skip && r.Capability == "" {
			n++
		}
	}
	return n
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Selection records what a run was asked to run, against the whole catalog it was drawn from.
type Selection struct {
	// Catalog names the catalog: "built-in" or the scenario directories given.
	Catalog string `json:"catalog" yaml:"catalog"`
	// Groups and IDs are the --group and --id values, deduplicated, as given.
	Groups []string `json:"groups,omitempty" yaml:"groups,omitempty"`
	IDs    []string `json:"ids,omitempty" yaml:"ids,omitempty"`
	// Scenarios are the selected groups, in order.
	Scenarios []string `json:"scenarios" yaml:"scenarios"`
	// SelectedIDs are the expectation IDs selected, in catalog order.
	SelectedIDs []string `json:"selectedIDs" yaml:"selectedIDs"`
	// CatalogIDs is how many expectation IDs the whole catalog holds.
	CatalogIDs int `json:"catalogIDs" yaml:"catalogIDs"`
	// EmptyScenarios are selected scenarios without a single expectation (steps: []).
	EmptyScenarios []string `json:"emptyScenarios,omitempty" yaml:"emptyScenarios,omitempty"`
	// Full is true only when nothing was filtered out, every scenario has expectations and there
	// is at least one: only a full selection can be reported as a success.
	Full bool `json:"full" yaml:"full"`
}

// Describe says what was selected, in one line.
func (s *Selection) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d IDs of the %s catalog", len(s.SelectedIDs), s.CatalogIDs, s.Catalog)
	if len(s.Groups) > 0 {
		fmt.Fprintf(&b, ", --group %s", strings.Join(s.Groups, " --group "))
	}
	if len(s.IDs) > 0 {
		fmt.Fprintf(&b, ", --id %s", strings.Join(s.IDs, " --id "))
	}
	if len(s.EmptyScenarios) > 0 {
		fmt.Fprintf(&b, "; without expectations: %s", strings.Join(s.EmptyScenarios, ", "))
	}
	return b.String()
}

// TeardownFailure is a scenario whose teardown failed: what it created or changed may still be
// in place, so the run is not a pass.
type TeardownFailure struct {
	Group    string `json:"group" yaml:"group"`
	Scenario string `json:"scenario" yaml:"scenario"`
	Error    string `json:"error" yaml:"error"`
}
