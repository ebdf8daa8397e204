// Package report holds the results of a run and writes them out: JUnit XML for CI, a Markdown
// truth table a person reads at a glance, and a versioned conformance report for vendors.
package report

import (
	"fmt"
	"time"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// Verdict of one expectation.
type Verdict string

const (
	// Pass: every check was observed as expected.
	Pass Verdict = "pass"
	// Fail: a check was observed and differed from the expectation.
	Fail Verdict = "fail"
	// Error: a check could not be observed (probe did not run, step failed): never a pass.
	Error Verdict = "error"
	// Skip: the backend cannot observe this expectation; the reason says why.
	Skip Verdict = "skip"
)

// CheckResult is one probe or log read of an expectation.
type CheckResult struct {
	Description string  `json:"description" yaml:"description"`
	Expected    string  `json:"expected" yaml:"expected"`
	Observed    string  `json:"observed" yaml:"observed"`
	Verdict     Verdict `json:"verdict" yaml:"verdict"`
	Message     string  `json:"message,omitempty" yaml:"message,omitempty"`
	// Attempts is how many probes ran (a positive needs several in a row, a negative keeps holding).
	Attempts int           `json:"attempts" yaml:"attempts"`
	Duration time.Duration `json:"duration" yaml:"duration"`
	// Probes are the markers of the requests a probe check made (outcome.Observed.Probe); a log
	// check reads only the entries of these requests.
	Probes []string `json:"probes,omitempty" yaml:"probes,omitempty"`
	// Prediction is the same check predicted by a second oracle of the run (--probe curl,xds: the
	// live istiod's xDS), after the observation, on the same converged state.
	Prediction *Prediction `json:"prediction,omitempty" yaml:"prediction,omitempty"`
}

// Prediction is an answer for an expectation (or one check) from an oracle other than the
// result's own: the live istiod's xDS in a --probe curl,xds run, or an offline run joined with
// --offline-from. It is recorded beside the result and never decides the result's verdict.
type Prediction struct {
	Oracle   backend.Oracle `json:"oracle" yaml:"oracle"`
	Observed string         `json:"observed" yaml:"observed"`
	Verdict  Verdict        `json:"verdict" yaml:"verdict"`
	Message  string         `json:"message,omitempty" yaml:"message,omitempty"`
	// Capability, on a skip, is the capability the predicting backend lacks.
	Capability string `json:"capability,omitempty" yaml:"capability,omitempty"`
	// Run names the run the prediction was joined from; empty when this run made it.
	Run string `json:"run,omitempty" yaml:"run,omitempty"`
	// Probes are the markers of the predicted requests (a check's prediction); a predicted log
	// check reads only the entries of these.
	Probes []string `json:"probes,omitempty" yaml:"probes,omitempty"`
}

// PredictionSource says where a run's predictions of one oracle came from.
type PredictionSource struct {
	Oracle backend.Oracle `json:"oracle" yaml:"oracle"`
	// Run is the run they were joined from (empty: this run made them); File its results file.
	Run  string `json:"run,omitempty" yaml:"run,omitempty"`
	File string `json:"file,omitempty" yaml:"file,omitempty"`
	// Backend is the predicting backend's name, IstioVersion its control plane's version.
	Backend      string `json:"backend" yaml:"backend"`
	IstioVersion string `json:"istioVersion,omitempty" yaml:"istioVersion,omitempty"`
}

// Result is the outcome of one expectation ID.
type Result struct {
	ID       string `json:"id" yaml:"id"`
	Group    string `json:"group" yaml:"group"`
	Scenario string `json:"scenario" yaml:"scenario"`
	Profile  string `json:"profile" yaml:"profile"`
	Step     string `json:"step" yaml:"step"`
	// Kind is documented or derived.
	Kind   string            `json:"kind" yaml:"kind"`
	Source *catalog.Citation `json:"source,omitempty" yaml:"source,omitempty"`
	Drift  string            `json:"drift,omitempty" yaml:"drift,omitempty"`
	// From and Request summarise the checks for the truth table.
	From     string  `json:"from" yaml:"from"`
	Request  string  `json:"request" yaml:"request"`
	Expected string  `json:"expected" yaml:"expected"`
	Observed string  `json:"observed" yaml:"observed"`
	Verdict  Verdict `json:"verdict" yaml:"verdict"`
	// Message explains a fail, error or skip.
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
	// Capability, on a skip, is the capability the backend declares it lacks (networkpolicy): the
	// only kind of skip a full pass allows.
	Capability string `json:"capability,omitempty" yaml:"capability,omitempty"`
	// NotRun marks an error result of an expectation that never ran (the run was interrupted
	// before it, or its spec ended without a result).
	NotRun bool `json:"notRun,omitempty" yaml:"notRun,omitempty"`
	// Backend and Oracle name what produced the result: never leave a reader guessing whether it
	// was observed or predicted.
	Backend     string         `json:"backend" yaml:"backend"`
	Oracle      backend.Oracle `json:"oracle" yaml:"oracle"`
	Duration    time.Duration  `json:"duration" yaml:"duration"`
	Checks      []CheckResult  `json:"checks" yaml:"checks"`
	Diagnostics string         `json:"diagnostics,omitempty" yaml:"diagnostics,omitempty"`
	// Predictions are the same expectation answered by other oracles (the live istiod's xDS in a
	// --probe curl,xds run, an offline run joined with --offline-from), one per oracle. Verdict
	// above stays the result's own oracle's.
	Predictions []Prediction `json:"predictions,omitempty" yaml:"predictions,omitempty"`
}

// PredictionBy returns the result's prediction of oracle o, or nil.
func (r *Result) PredictionBy(o backend.Oracle) *Prediction {
	for i := range r.Predictions {
		if r.Predictions[i].Oracle == o {
			return &r.Predictions[i]
		}
	}
	return nil
}

// Implementation identifies who ran the suite against what, as the Gateway API's report does.
type Implementation struct {
	Organization string   `json:"organization" yaml:"organization"`
	Project      string   `json:"project" yaml:"project"`
	URL          string   `json:"url,omitempty" yaml:"url,omitempty"`
	Version      string   `json:"version" yaml:"version"`
	Contact      []string `json:"contact,omitempty" yaml:"contact,omitempty"`
}

// Run is one execution of the suite.
type Run struct {
	ID             string         `json:"id" yaml:"id"`
	Started        time.Time      `json:"started" yaml:"started"`
	Finished       time.Time      `json:"finished" yaml:"finished"`
	Backend        backend.Info   `json:"backend" yaml:"backend"`
	Implementation Implementation `json:"implementation" yaml:"implementation"`
	// Measurements are extra facts for the summary (wall time, peak memory...), in order.
	Measurements []Measurement `json:"measurements,omitempty" yaml:"measurements,omitempty"`
	// Timing is where the wall time went (make bench-live prints it).
	Timing  *Timing  `json:"timing,omitempty" yaml:"timing,omitempty"`
	Results []Result `json:"results" yaml:"results"`
	// Interrupted is true when the run was stopped (SIGINT, SIGTERM, a cancelled context) before
	// every selected ID ran; those IDs are error results with NotRun set.
	Interrupted bool `json:"interrupted" yaml:"interrupted"`
	// Selection is what was asked for against the whole catalog.
	Selection *Selection `json:"selection,omitempty" yaml:"selection,omitempty"`
	// Settings are the consistency settings and time bounds that shaped the verdicts, by flag name
	// (positive-successes, negative-hold, timeout-eventually, ...).
	Settings map[string]string `json:"settings,omitempty" yaml:"settings,omitempty"`
	// TeardownFailures are the scenarios whose teardown failed.
	TeardownFailures []TeardownFailure `json:"teardownFailures,omitempty" yaml:"teardownFailures,omitempty"`
	// Predictions name the oracles whose predictions the results carry besides their own, and
	// where each came from. The run's verdict never rests on them.
	Predictions []PredictionSource `json:"predictions,omitempty" yaml:"predictions,omitempty"`
	// Adaptations are the changes the harness made to catalog objects before applying them (the
	// ASM translation, the stand-in CA for TLS origination), each once.
	Adaptations []Adaptation `json:"adaptations,omitempty" yaml:"adaptations,omitempty"`
	// Verdict is Decide(run), filled when the reports are written.
	Verdict *Decision `json:"verdict,omitempty" yaml:"verdict,omitempty"`
	// viewOf, on an oracle view (OracleViews), is the run whose predictions it holds; joinedFrom
	// the run they were joined from (--offline-from).
	viewOf, joinedFrom string
}

// Adaptation is one change the harness made to a catalog object before it was applied: what the
// backend received differs from the catalog's file exactly there.
type Adaptation struct {
	// Group is the scenario's group (G9) whose step applied the object.
	Group string `json:"group" yaml:"group"`
	// File is the catalog file (scenario directory/file) the object comes from.
	File string `json:"file" yaml:"file"`
	// Object is the object as the file has it: Kind namespace/name.
	Object string `json:"object" yaml:"object"`
	// Field is the changed field's path (spec.trafficPolicy.tls.credentialName); empty when the
	// whole object was replaced.
	Field string `json:"field,omitempty" yaml:"field,omitempty"`
	// Change says what changed: added VALUE, removed VALUE, OLD -> NEW, or replaced by OBJECTS.
	Change string `json:"change" yaml:"change"`
}

// String is the adaptation on one line.
func (a Adaptation) String() string {
	where := a.Object
	if a.Field != "" {
		where += " " + a.Field
	}
	return fmt.Sprintf("%s: %s: %s", a.File, where, a.Change)
}

// Measurement is a named value for the summary.
type Measurement struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

// Counts tallies verdicts.
type Counts struct {
	Passed  int `json:"passed" yaml:"passed"`
	Failed  int `json:"failed" yaml:"failed"`
	Errored int `json:"errored" yaml:"errored"`
	Skipped int `json:"skipped" yaml:"skipped"`
}

// Add counts one verdict.
func (c *Counts) Add(v Verdict) {
	switch v {
	case Pass:
		c.Passed++
	case Fail:
		c.Failed++
	case Error:
		c.Errored++
	case Skip:
		c.Skipped++
	}
}

// Total is the number of results counted.
func (c Counts) Total() int { return c.Passed + c.Failed + c.Errored + c.Skipped }

// Counts tallies the run.
func (r *Run) Counts() Counts {
	var c Counts
	for _, res := range r.Results {
		c.Add(res.Verdict)
	}
	return c
}

// OK reports whether the run's verdict (Decide) is a pass: success or partial, exit code 0.
func (r *Run) OK() bool { return Decide(r).Passed() }
