package report

import (
	"fmt"
	"strings"

	"github.com/egressconf/egressconf/pkg/backend"
)

// Class names why the answers for one expectation ID disagree: between runs of different oracles,
// or all of them with the document. The rules are in classify, and only there.
type Class string

const (
	// ClassDocDrift: what Envoy did (observed) and what the control plane configured (predicted)
	// agree with each other and both fail the same way: the document says something else.
	ClassDocDrift Class = "documentation-drift"
	// ClassDataPlane: what Envoy did differs from the live istiod's prediction: the data plane (a
	// proxy build, the platform's network) did something its configuration does not say.
	ClassDataPlane Class = "data-plane-divergence"
	// ClassControlPlane: the offline and the live control-plane predictions differ: the live
	// istiod (its version, its settings, what else is in the cluster) configured something else.
	ClassControlPlane Class = "control-plane-difference"
	// ClassModelGap: the observation differs from the offline prediction with no live prediction
	// to tell a control-plane difference from a gap in egressconf's Envoy model, or the model
	// itself said the request is outside what it covers.
	ClassModelGap Class = "model-gap"
	// ClassDiffers: two runs of the same oracle (two Istio versions, before and after a change)
	// answer differently; the reason names what changed.
	ClassDiffers Class = "differs"
	// ClassNotCompared: a run skipped the ID for a capability it declares it lacks (no
	// NetworkPolicy offline) while another observed it: neither agreement nor difference.
	ClassNotCompared Class = "not-compared"
	// ClassUnclassified: a disagreement no rule above explains (an error, a missing result, a
	// skip for another reason, every run of one kind failing alike). Shown, never hidden.
	ClassUnclassified Class = "unclassified"
)

// Classes in the order reports list them.
var Classes = []Class{ClassDocDrift, ClassDataPlane, ClassControlPlane, ClassModelGap, ClassDiffers, ClassNotCompared, ClassUnclassified}

// Title is the class in words, for reports.
func (c Class) Title() string {
	switch c {
	case ClassDocDrift:
		return "documentation drift"
	case ClassDataPlane:
		return "data-plane divergence"
	case ClassControlPlane:
		return "control-plane difference"
	case ClassModelGap:
		return "model gap"
	case ClassDiffers:
		return "differs"
	case ClassNotCompared:
		return "not compared"
	}
	return "unclassified"
}

// Explain says how to read the class, for the reports' legend.
func (c Class) Explain() string {
	switch c {
	case ClassDocDrift:
		return "observed and predicted agree with each other and fail the same way: the document expects something else"
	case ClassDataPlane:
		return "what Envoy did differs from what the live istiod's configuration predicts"
	case ClassControlPlane:
		return "the offline prediction (Istio in process) and the live istiod's prediction differ"
	case ClassModelGap:
		return "observed differs from the offline prediction and no live prediction is there, or the Envoy model says the request is outside what it covers"
	case ClassDiffers:
		return "runs of the same oracle (two versions, before and after) answer differently"
	case ClassNotCompared:
		return "one run skipped it for a capability it lacks while another observed it"
	}
	return "a disagreement no rule explains: an error, a missing result, a skip for another reason"
}

// Differential holds several runs against each other and against the documents, per expectation ID.
type Differential struct {
	Runs []*Run
	// Rows are every ID of any run: the first run's order, then IDs only later runs have.
	Rows []DiffRow
}

// DiffRow is one expectation ID across the runs.
type DiffRow struct {
	ID, Group, Scenario string
	// Results has one entry per run, in the order of Runs; nil where that run has no result.
	Results []*Result
	// Differs: two compared results disagree (verdict or outcome), or a run has no result.
	Differs bool
	// NotCompared: a run skipped it for a missing capability while another ran it.
	NotCompared bool
	// Classes is empty when every compared answer agrees and none fails.
	Classes []Class
	// Reasons say, one sentence each, what the classes rest on.
	Reasons []string
}

// Expectation is the first result present: what the catalog says (source, expected, request) is
// the same in every run of the same catalog.
func (r *DiffRow) Expectation() *Result {
	for _, res := range r.Results {
		if res != nil {
			return res
		}
	}
	return nil
}

// Has reports whether the row carries class c.
func (r *DiffRow) Has(c Class) bool {
	for _, x := range r.Classes {
		if x == c {
			return true
		}
	}
	return false
}

// NewDifferential builds the per-ID table of runs and classifies every disagreement. Each run
// counts once per oracle it carries (OracleViews): a --probe curl,xds run is an observation and
// a live prediction, and a run joined with --offline-from adds the offline prediction, unless
// that offline run is given itself. One run of one oracle gives the table without classes.
func NewDifferential(given ...*Run) *Differential {
	ids := map[string]bool{}
	for _, r := range given {
		ids[r.ID] = true
	}
	var runs []*Run
	for _, r := range given {
		for _, v := range OracleViews(r) {
			if v.joinedFrom != "" && ids[v.joinedFrom] {
				continue // the run it was joined from is compared as itself
			}
			runs = append(runs, v)
		}
	}
	d := &Differential{Runs: runs}
	index := map[string]int{}
	for i, run := range runs {
		for j := range run.Results {
			res := &run.Results[j]
			k, ok := index[res.ID]
			if !ok {
				k = len(d.Rows)
				index[res.ID] = k
				d.Rows = append(d.Rows, DiffRow{ID: res.ID, Group: res.Group, Scenario: res.Scenario, Results: make([]*Result, len(runs))})
			}
			if d.Rows[k].Results[i] == nil { // a duplicate result is Decide's to report
				d.Rows[k].Results[i] = res
			}
		}
	}
	if len(runs) >= 2 {
		for i := range d.Rows {
			classify(runs, &d.Rows[i])
		}
	}
	return d
}

// oracleOf is the result's oracle, or its run's for results written before results carried it.
func oracleOf(run *Run, r *Result) backend.Oracle {
	if r.Oracle != "" {
		return r.Oracle
	}
	return run.Backend.Oracle
}

func capabilitySkip(r *Result) bool { return r.Verdict == Skip && r.Capability != "" }

// OutOfModel reports a result the Envoy model declined to predict (the runner's skip for an
// outcome.OutOfModelError).
func OutOfModel(r *Result) bool {
	return r.Verdict == Skip && (r.Observed == "out of model" || strings.Contains(r.Message, "out of model"))
}

func same(a, b *Result) bool { return a.Verdict == b.Verdict && a.Observed == b.Observed }

// Answer is a result in a few words: its verdict and what was observed.
func Answer(r *Result) string {
	if r.Observed == "" {
		return VerdictWord(r)
	}
	return fmt.Sprintf("%s %q", VerdictWord(r), r.Observed)
}

// VerdictWord is the verdict as the reports print it: PASS, FAIL, ERROR, NOT RUN or SKIP.
func VerdictWord(r *Result) string {
	if r.Verdict == Error && r.NotRun {
		return "NOT RUN"
	}
	return strings.ToUpper(string(r.Verdict))
}

// classify is the one place the differential's rules live (README, "The HTML report and the
// differential classes").
func classify(runs []*Run, row *DiffRow) {
	add := func(c Class, format string, args ...any) {
		if !row.Has(c) {
			row.Classes = append(row.Classes, c)
		}
		row.Reasons = append(row.Reasons, c.Title()+": "+fmt.Sprintf(format, args...))
	}
	var missing, present []int
	for i, r := range row.Results {
		if r == nil {
			missing = append(missing, i)
		} else {
			present = append(present, i)
		}
	}
	if len(missing) > 0 {
		row.Differs = true
	}
	// Compared: the results that ran. A capability skip is no answer, so it is set aside.
	var compared, capSkipped []int
	for _, i := range present {
		if capabilitySkip(row.Results[i]) {
			capSkipped = append(capSkipped, i)
		} else {
			compared = append(compared, i)
		}
	}
	if len(capSkipped) > 0 && len(compared) > 0 {
		row.NotCompared = true
	}
	for x := 0; x < len(compared); x++ {
		for y := x + 1; y < len(compared); y++ {
			if !same(row.Results[compared[x]], row.Results[compared[y]]) {
				row.Differs = true
			}
		}
	}
	anyNotPass := false
	for _, i := range compared {
		if row.Results[i].Verdict != Pass {
			anyNotPass = true
		}
	}
	if !row.Differs && !anyNotPass {
		if row.NotCompared {
			for _, i := range capSkipped {
				add(ClassNotCompared, "%s skipped it (no capability %q)", runs[i].ID, row.Results[i].Capability)
			}
		}
		return // every answer agrees and passes (or nothing ran): nothing to classify
	}

	// Answers: per oracle, the results that are predictions or observations of an outcome.
	// Out-of-model skips are model gaps; errors and other skips observed nothing.
	byOracle := map[backend.Oracle][]int{}
	var oracles []backend.Oracle
	var unobserved []string
	for _, i := range compared {
		r := row.Results[i]
		switch {
		case OutOfModel(r):
			add(ClassModelGap, "%s (%s): the Envoy model does not cover it: %s", runs[i].ID, oracleOf(runs[i], r), r.Message)
		case r.Verdict == Pass || r.Verdict == Fail:
			o := oracleOf(runs[i], r)
			if _, ok := byOracle[o]; !ok {
				oracles = append(oracles, o)
			}
			byOracle[o] = append(byOracle[o], i)
		default:
			msg := r.Message
			if msg == "" {
				msg = "no message"
			}
			unobserved = append(unobserved, fmt.Sprintf("%s: %s (%s)", runs[i].ID, VerdictWord(r), msg))
		}
	}
	// Within one oracle: runs that disagree differ, and name what changed between them.
	rep := map[backend.Oracle]*Result{}
	for _, o := range oracles {
		idx := byOracle[o]
		agree := true
		for _, i := range idx[1:] {
			if !same(row.Results[idx[0]], row.Results[i]) {
				agree = false
			}
		}
		if agree {
			rep[o] = row.Results[idx[0]]
			continue
		}
		var parts []string
		for _, i := range idx {
			parts = append(parts, fmt.Sprintf("%s %s", runs[i].ID, Answer(row.Results[i])))
		}
		what := "outcome observed"
		if row.Results[idx[0]].Observed == row.Results[idx[1]].Observed {
			what = "verdict"
		}
		changed := runChanges(runs, idx)
		if changed != "" {
			changed = "; between the runs: " + changed
		}
		add(ClassDiffers, "%s changed (%s): %s%s", what, o, strings.Join(parts, " → "), changed)
	}
	obs, live, off := rep[backend.OracleLiveDataPlane], rep[backend.OracleLiveControlPlane], rep[backend.OracleOffline]
	if obs != nil && live != nil && !same(obs, live) {
		add(ClassDataPlane, "observed %s, the live istiod's configuration predicts %s", Answer(obs), Answer(live))
	}
	if off != nil && live != nil && !same(off, live) {
		add(ClassControlPlane, "offline prediction %s, live prediction %s", Answer(off), Answer(live))
	}
	if obs != nil && off != nil && live == nil && !same(obs, off) {
		add(ClassModelGap, "observed %s, the offline prediction %s, and no live prediction to tell a control-plane difference from a gap in the model", Answer(obs), Answer(off))
	}
	if obs != nil && (live != nil || off != nil) && obs.Verdict == Fail && len(unobserved) == 0 {
		agree := (live == nil || same(obs, live)) && (off == nil || same(obs, off))
		if agree {
			add(ClassDocDrift, "observed and predicted agree (%s), the document expects %q", Answer(obs), obs.Expected)
		}
	}
	for _, i := range capSkipped {
		if len(compared) > 0 {
			add(ClassNotCompared, "%s skipped it (no capability %q)", runs[i].ID, row.Results[i].Capability)
		}
	}
	if len(row.Classes) == 0 || (len(row.Classes) == 1 && row.Classes[0] == ClassNotCompared) {
		var why []string
		for _, i := range missing {
			why = append(why, "no result in "+runs[i].ID)
		}
		why = append(why, unobserved...)
		if len(why) == 0 {
			var parts []string
			for _, i := range compared {
				parts = append(parts, fmt.Sprintf("%s (%s) %s", runs[i].ID, oracleOf(runs[i], row.Results[i]), Answer(row.Results[i])))
			}
			why = append(why, "no rule applies to "+strings.Join(parts, ", ")+": documentation drift needs an observation and a prediction that agree")
		}
		add(ClassUnclassified, "%s", strings.Join(why, "; "))
	} else if len(missing) > 0 || len(unobserved) > 0 {
		// Classified on what was answered; what was not is still said.
		for _, i := range missing {
			row.Reasons = append(row.Reasons, "also: no result in "+runs[i].ID)
		}
		for _, u := range unobserved {
			row.Reasons = append(row.Reasons, "also: "+u)
		}
	}
}

// runChanges names what differs between the runs at idx: Istio version, mesh, proxy, backend.
func runChanges(runs []*Run, idx []int) string {
	fields := []struct {
		name string
		get  func(*Run) string
	}{
		{"Istio", func(r *Run) string { return r.Backend.IstioVersion }},
		{"mesh", func(r *Run) string { return r.Backend.MeshVersion }},
		{"proxy", func(r *Run) string { return r.Backend.Proxy }},
		{"backend", func(r *Run) string { return r.Backend.Name }},
	}
	var out []string
	for _, f := range fields {
		var vals []string
		distinct := map[string]bool{}
		for _, i := range idx {
			v := f.get(runs[i])
			if v == "" {
				v = "?"
			}
			vals = append(vals, v)
			distinct[v] = true
		}
		if len(distinct) > 1 {
			out = append(out, f.name+" "+strings.Join(vals, " → "))
		}
	}
	return strings.Join(out, ", ")
}

// ClassCounts counts the rows of each class.
func (d *Differential) ClassCounts() map[Class]int {
	m := map[Class]int{}
	for _, r := range d.Rows {
		for _, c := range r.Classes {
			m[c]++
		}
	}
	return m
}

// Groups are the groups of the rows, in order of first appearance.
func (d *Differential) Groups() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range d.Rows {
		if r.Group != "" && !seen[r.Group] {
			seen[r.Group] = true
			out = append(out, r.Group)
		}
	}
	return out
}

// OracleViews is the run once per oracle: the run itself, then for each oracle its results carry
// predictions of (Run.Predictions), a run of its own whose results are those predictions. A
// result without a prediction of that oracle is an error there ("no prediction"), never a pass.
func OracleViews(run *Run) []*Run {
	out := []*Run{run}
	for _, src := range predictionSources(run) {
		v := &Run{
			ID: fmt.Sprintf("%s[%s]", run.ID, src.Oracle), Started: run.Started, Finished: run.Finished,
			Backend:        backend.Info{Name: src.Backend, Oracle: src.Oracle, IstioVersion: src.IstioVersion, MeshVersion: run.Backend.MeshVersion},
			Implementation: run.Implementation, Interrupted: run.Interrupted, Selection: run.Selection, Settings: run.Settings,
			viewOf: run.ID, joinedFrom: src.Run,
		}
		if src.Run != "" {
			v.ID = fmt.Sprintf("%s[%s from %s]", run.ID, src.Oracle, src.Run)
			v.Backend.MeshVersion = ""
		}
		if v.Backend.Name == "" {
			v.Backend.Name = run.Backend.Name
		}
		if src.Run == "" && v.Backend.IstioVersion == "" {
			v.Backend.IstioVersion = run.Backend.IstioVersion // the same istiod's
		}
		for _, r := range run.Results {
			v.Results = append(v.Results, predictedResult(r, src.Oracle, v.Backend.Name))
		}
		out = append(out, v)
	}
	return out
}

// predictionSources are the run's prediction oracles: Run.Predictions, and any other oracle a
// result carries (a results.json written by hand or by an older egressconf).
func predictionSources(run *Run) []PredictionSource {
	srcs := append([]PredictionSource(nil), run.Predictions...)
	seen := map[backend.Oracle]bool{}
	for _, s := range srcs {
		seen[s.Oracle] = true
	}
	for _, r := range run.Results {
		for _, p := range r.Predictions {
			if !seen[p.Oracle] && p.Oracle != "" {
				seen[p.Oracle] = true
				srcs = append(srcs, PredictionSource{Oracle: p.Oracle, Run: p.Run})
			}
		}
	}
	return srcs
}

// predictedResult is r as oracle o predicted it.
func predictedResult(r Result, o backend.Oracle, backendName string) Result {
	v := r
	v.Oracle, v.Backend, v.Predictions, v.Diagnostics, v.Duration = o, backendName, nil, "", 0
	p := r.PredictionBy(o)
	if p == nil {
		v.Verdict, v.Observed, v.Capability = Error, "", ""
		v.Message = fmt.Sprintf("no prediction of %s recorded for %s", o, r.ID)
		v.Checks = nil
		return v
	}
	v.Verdict, v.Observed, v.Message, v.Capability = p.Verdict, p.Observed, p.Message, p.Capability
	v.Checks = nil
	for _, c := range r.Checks {
		pc := CheckResult{Description: c.Description, Expected: c.Expected}
		if c.Prediction != nil && c.Prediction.Oracle == o {
			pc.Observed, pc.Verdict, pc.Message, pc.Probes, pc.Attempts = c.Prediction.Observed, c.Prediction.Verdict, c.Prediction.Message, c.Prediction.Probes, 1
		} else if p.Run == "" {
			pc.Verdict, pc.Message = Error, "no prediction recorded for this check"
		} else {
			continue // joined from another run: predicted per expectation, checks not carried
		}
		v.Checks = append(v.Checks, pc)
	}
	return v
}
