package report

import (
	"io"
	"sort"

	"sigs.k8s.io/yaml"
)

// ConformanceAPIVersion versions the conformance report format.
const ConformanceAPIVersion = "egressconf.io/v1alpha1"

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
	ClusterDNS string            `json:"clusterDNS,omitempty"`
	Profiles   []ProfileReport   `json:"profiles"`
	Summary    ConformanceCounts `json:"summary"`
	// Interrupted is true when the run was stopped before every selected ID ran.
	Interrupted bool `json:"interrupted"`
	// Selection names what was run against the whole catalog; only a full selection can be a
	// success.
	Selection *Selection `json:"selection,omitempty"`
	// Settings are the consistency settings and time bounds the verdicts were reached with.
	Settings map[string]string `json:"settings,omitempty"`
	// TeardownFailures name the scenarios whose teardown failed.
	TeardownFailures []TeardownFailure `json:"teardownFailures,omitempty"`
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
		Interrupted:      run.Interrupted,
		Selection:        run.Selection,
		Settings:         run.Settings,
		TeardownFailures: run.TeardownFailures,
	}
	byProfile := map[string]*ProfileReport{}
	var names []string
	var total Counts
	byProfileResults := map[string][]Result{}
	for _, r := range run.Results {
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
