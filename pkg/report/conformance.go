package report

import (
	"io"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/backend"
)

// ConformanceAPIVersion versions the conformance report format. v1alpha2 added tests (every ID's
// answer per oracle) and predictions (where the predictions came from).
const ConformanceAPIVersion = "egressconf.io/v1alpha2"

// ConformanceReport is modelled on the Gateway API's ConformanceReport: who ran it, against what,
// and per profile (istio-native: G1 and G7..G13; asm-egress-traffic-policy: G2..G6) what passed, failed and was skipped (with every skip named and its reason).
type ConformanceReport struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Date           string         `json:"date"`
	RunID          string         `json:"runID"`
	Implementation Implementation `json:"implementation"`
	// Backend and Oracle say what produced the results; only observed-live-data-plane is a
	// conformance claim about a live mesh.
	Backend      string `json:"backend"`
	Oracle       string `json:"oracle"`
	Claim        string `json:"claim"`
	IstioVersion string `json:"istioVersion,omitempty"`
	MeshVersion  string `json:"meshVersion,omitempty"`
	// NetworkPolicy says how the cluster's NetworkPolicy enforcement was decided (the CNI found,
	// the self-test's result).
	NetworkPolicy string `json:"networkPolicy,omitempty"`
	// ClusterDNS says whose DNS the run pointed at the stand-in (--cluster-dns): its own pods,
	// or every pod of the cluster, and which names.
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// Adaptations are the changes the harness made to catalog objects before applying them.
	Adaptations []Adaptation      `json:"adaptations,omitempty"`
	Profiles    []ProfileReport   `json:"profiles"`
	Summary     ConformanceCounts `json:"summary"`
	// Interrupted is true when the run was stopped before every selected ID ran.
	Interrupted bool `json:"interrupted"`
	// Selection names what was run against the whole catalog; only a full selection can be a
	// success.
	Selection *Selection `json:"selection,omitempty"`
	// Settings are the consistency settings and time bounds the verdicts were reached with.
	Settings map[string]string `json:"settings,omitempty"`
	// TeardownFailures name the scenarios whose teardown failed.
	TeardownFailures []TeardownFailure `json:"teardownFailures,omitempty"`
	// Predictions name the oracles whose predictions the tests carry besides the run's own
	// (--probe curl,xds; --offline-from). The summary and profiles count the run's own oracle only.
	Predictions []PredictionSource `json:"predictions,omitempty"`
	// Tests are every ID with the document's expectation and each oracle's answer: what was
	// observed, and apart from it what was only predicted.
	Tests []TestOracles `json:"tests"`
}

// TestOracles is one expectation ID: what the document says and what each oracle answered.
// A field is absent when the run has no answer of that oracle.
type TestOracles struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// Kind is documented (the document states it) or derived.
	Kind string `json:"kind"`
	// Documented is the expected outcome, from the catalog (and the document it cites).
	Documented string `json:"documented"`
	Source     string `json:"source,omitempty"`
	// PredictedOffline: Istio's control plane in process and egressconf's Envoy model.
	PredictedOffline *OracleAnswer `json:"predictedOffline,omitempty"`
	// PredictedLiveControlPlane: the live istiod's xDS and egressconf's Envoy model.
	PredictedLiveControlPlane *OracleAnswer `json:"predictedLiveControlPlane,omitempty"`
	// Observed: curl through the live mesh's Envoy. The only conformance evidence.
	Observed *OracleAnswer `json:"observed,omitempty"`
}

// OracleAnswer is one oracle's answer for an ID.
type OracleAnswer struct {
	Oracle  backend.Oracle `json:"oracle"`
	Verdict Verdict        `json:"verdict"`
	// Outcome is what was observed or predicted (status, reset, log entry...).
	Outcome    string `json:"outcome,omitempty"`
	Message    string `json:"message,omitempty"`
	Capability string `json:"capability,omitempty"`
	// Run names the run a joined prediction came from.
	Run string `json:"run,omitempty"`
}

// newTestOracles is a result's answers by oracle.
func newTestOracles(r Result) TestOracles {
	t := TestOracles{ID: r.ID, Group: r.Group, Kind: r.Kind, Documented: r.Expected}
	if r.Source != nil {
		t.Source = r.Source.Doc
		if r.Source.Section != "" {
			t.Source += ", " + r.Source.Section
		}
	}
	set := func(a *OracleAnswer) {
		switch a.Oracle {
		case backend.OracleOffline:
			t.PredictedOffline = a
		case backend.OracleLiveControlPlane:
			t.PredictedLiveControlPlane = a
		case backend.OracleLiveDataPlane:
			t.Observed = a
		}
	}
	set(&OracleAnswer{Oracle: r.Oracle, Verdict: r.Verdict, Outcome: r.Observed, Message: r.Message, Capability: r.Capability})
	for _, p := range r.Predictions {
		set(&OracleAnswer{Oracle: p.Oracle, Verdict: p.Verdict, Outcome: p.Observed, Message: p.Message, Capability: p.Capability, Run: p.Run})
	}
	return t
}

// ConformanceCounts are the counts of a profile.
type ConformanceCounts struct {
	// Result is success, partial, failure or interrupted (see report.Decide).
	Result string `json:"result"`
	// Reasons say why the run is not a success (summary only).
	Reasons []string `json:"reasons,omitempty"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Errored int      `json:"errored"`
	Skipped int      `json:"skipped"`
}

// ProfileReport is one profile's results.
type ProfileReport struct {
	Name         string            `json:"name"`
	Groups       []string          `json:"groups"`
	Core         ConformanceCounts `json:"core"`
	FailedTests  []string          `json:"failedTests,omitempty"`
	ErroredTests []string          `json:"erroredTests,omitempty"`
	// NotRunTests are the errored IDs that never ran (an interrupted run).
	NotRunTests      []string      `json:"notRunTests,omitempty"`
	SkippedTests     []SkippedTest `json:"skippedTests,omitempty"`
	DocumentedPassed int           `json:"documentedPassed"`
	DerivedPassed    int           `json:"derivedPassed"`
}

// SkippedTest names a skipped expectation and why.
type SkippedTest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// NewConformanceReport builds the report from a run.
func NewConformanceReport(run *Run) ConformanceReport {
	cr := ConformanceReport{
		APIVersion:       ConformanceAPIVersion,
		Kind:             "ConformanceReport",
		Date:             run.Finished.UTC().Format("2006-01-02T15:04:05Z"),
		RunID:            run.ID,
		Implementation:   run.Implementation,
		Backend:          run.Backend.Name,
		Oracle:           string(run.Backend.Oracle),
		Claim:            run.Backend.Oracle.Claim(),
		IstioVersion:     run.Backend.IstioVersion,
		MeshVersion:      run.Backend.MeshVersion,
		NetworkPolicy:    run.Backend.NetworkPolicy,
		ClusterDNS:       run.Backend.ClusterDNS,
		Adaptations:      run.Adaptations,
		Interrupted:      run.Interrupted,
		Selection:        run.Selection,
		Settings:         run.Settings,
		TeardownFailures: run.TeardownFailures,
		Predictions:      run.Predictions,
		Tests:            []TestOracles{},
	}
	byProfile := map[string]*ProfileReport{}
	var names []string
	var total Counts
	byProfileResults := map[string][]Result{}
	for _, r := range run.Results {
		cr.Tests = append(cr.Tests, newTestOracles(r))
		byProfileResults[r.Profile] = append(byProfileResults[r.Profile], r)
		p, ok := byProfile[r.Profile]
		if !ok {
			p = &ProfileReport{Name: r.Profile}
			byProfile[r.Profile] = p
			names = append(names, r.Profile)
		}
		if len(p.Groups) == 0 || p.Groups[len(p.Groups)-1] != r.Group {
			p.Groups = append(p.Groups, r.Group)
		}
		var c Counts
		c.Add(r.Verdict)
		total.Add(r.Verdict)
		p.Core.Passed += c.Passed
		p.Core.Failed += c.Failed
		p.Core.Errored += c.Errored
		p.Core.Skipped += c.Skipped
		switch r.Verdict {
		case Pass:
			if r.Kind == "documented" {
				p.DocumentedPassed++
			} else {
				p.DerivedPassed++
			}
		case Fail:
			p.FailedTests = append(p.FailedTests, r.ID)
		case Error:
			p.ErroredTests = append(p.ErroredTests, r.ID)
			if r.NotRun {
				p.NotRunTests = append(p.NotRunTests, r.ID)
			}
		case Skip:
			p.SkippedTests = append(p.SkippedTests, SkippedTest{ID: r.ID, Reason: r.Message})
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := byProfile[n]
		p.Core.Result = decideCounts(run, byProfileResults[n])
		cr.Profiles = append(cr.Profiles, *p)
	}
	cr.Summary = ConformanceCounts{Passed: total.Passed, Failed: total.Failed, Errored: total.Errored, Skipped: total.Skipped}
	d := Decide(run)
	cr.Summary.Result, cr.Summary.Reasons = d.Result, d.Reasons
	return cr
}

// WriteConformance writes the conformance report as YAML.
func WriteConformance(w io.Writer, run *Run) error {
	data, err := yaml.Marshal(NewConformanceReport(run))
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}
