package mutate

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

// Options configure Check.
type Options struct {
	// Backend runs every run, one at a time; it must be deterministic (the offline one): a verdict
	// that changes between two runs of the same scenario would read as a flip.
	Backend backend.Backend
	// Transform rewrites objects before they reach the backend (see runner.Options).
	Transform func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)
	// Timeouts default to runner.DefaultTimeouts.
	Timeouts runner.Timeouts
	// Progress receives one line per group and per run; nil discards.
	Progress io.Writer
	// Catalog names the catalog in the reports.
	Catalog string
}

// Status is what the check concluded about one expectation.
type Status string

const (
	// Discriminating: it passes on the unmutated run and not when at least one change is left out.
	Discriminating Status = "discriminating"
	// NotDiscriminating: it passes on the unmutated run and with every change before it left out,
	// and the catalog does not declare it holdsRegardless. It certifies nothing.
	NotDiscriminating Status = "not-discriminating"
	// HoldsRegardless: the catalog declares that it holds regardless of the changes before it; it is
	// not required to flip (whether it does is still recorded).
	HoldsRegardless Status = "holds-regardless"
	// BaselineNotPass: it does not pass on the unmutated run (fail, error, or skip on this backend),
	// so a mutation shows nothing about it.
	BaselineNotPass Status = "baseline-not-pass"
)

// Cell is one expectation under one mutation.
type Cell struct {
	Mutation string         `json:"mutation"`
	Verdict  report.Verdict `json:"verdict"`
	// Flipped: the expectation passes on the unmutated run and does not pass under the mutation.
	Flipped bool `json:"flipped"`
	// Observed is what the mutated run saw; Message why it did not pass.
	Observed string `json:"observed,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Expectation is one expectation's row: its unmutated verdict and every mutation that can affect it.
type Expectation struct {
	ID       string         `json:"id"`
	Step     string         `json:"step"`
	Baseline report.Verdict `json:"baseline"`
	// BaselineObserved is what the unmutated run saw.
	BaselineObserved string `json:"baselineObserved,omitempty"`
	// BaselineMessage says why the unmutated run did not pass, if it did not.
	BaselineMessage string `json:"baselineMessage,omitempty"`
	// HoldsRegardless is the catalog's reason, if it declares one.
	HoldsRegardless string `json:"holdsRegardless,omitempty"`
	Status          Status `json:"status"`
	Cells           []Cell `json:"cells"`
	// FlippedBy names the mutations under which it does not pass; NotMattering those under which it
	// still passes.
	FlippedBy    []string `json:"flippedBy,omitempty"`
	NotMattering []string `json:"notMattering,omitempty"`
	// FlipsOnlyUnobserved: every flip is to error or skip, none to fail. The expectation would not
	// report a pass without the change, but no mutated run observed it fail (a log check whose
	// probes' expectation failed first, a probe from a workload not deployed).
	FlipsOnlyUnobserved bool `json:"flipsOnlyUnobserved,omitempty"`
}

// Group is the result of one scenario: its mutations and its expectations' rows.
type Group struct {
	Group        string        `json:"group"`
	Name         string        `json:"name"`
	Title        string        `json:"title"`
	Mutations    []Mutation    `json:"mutations"`
	Expectations []Expectation `json:"expectations"`
	// Runs counts the scenario runs made (the unmutated one included).
	Runs     int           `json:"runs"`
	Duration time.Duration `json:"durationNanos"`
}

// Result is the whole check.
type Result struct {
	Catalog  string         `json:"catalog"`
	Backend  backend.Info   `json:"backend"`
	Groups   []Group        `json:"groups"`
	Runs     int            `json:"runs"`
	Duration time.Duration  `json:"durationNanos"`
	Counts   map[Status]int `json:"counts"`
}

// Check runs every scenario of c unmutated and once per mutation (only through the scenario's
// last expectation), and classifies every expectation. A scenario with no expectations is listed
// without runs. It returns an error only when a run could not be made at all (ctx ended, a
// mutation could not be built); failures of expectations are results.
func Check(ctx context.Context, c *catalog.Catalog, o Options) (*Result, error) {
	if o.Backend == nil {
		return nil, fmt.Errorf("no backend")
	}
	if !o.Backend.Info().Deterministic {
		return nil, fmt.Errorf("backend %s is not deterministic: a verdict that differs between two runs would read as a flip", o.Backend.Info().Name)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Timeouts == (runner.Timeouts{}) {
		o.Timeouts = runner.DefaultTimeouts()
	}
	start := time.Now()
	res := &Result{Catalog: o.Catalog, Backend: o.Backend.Info(), Counts: map[Status]int{}}
	for _, s := range c.Scenarios {
		g, err := checkScenario(ctx, s, o)
		if err != nil {
			return nil, err
		}
		res.Groups = append(res.Groups, *g)
		res.Runs += g.Runs
		for _, e := range g.Expectations {
			res.Counts[e.Status]++
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func checkScenario(ctx context.Context, s *catalog.Scenario, o Options) (*Group, error) {
	start := time.Now()
	g := &Group{Group: s.Metadata.Group, Name: s.Metadata.Name, Title: s.Spec.Title}
	last := lastExpectationStep(s)
	if last < 0 {
		fmt.Fprintf(o.Progress, "== %s %s: no expectations, nothing to mutate\n", g.Group, g.Name)
		return g, nil
	}
	for _, m := range Mutations(s) {
		if m.Step <= last {
			g.Mutations = append(g.Mutations, m)
		}
	}
	fmt.Fprintf(o.Progress, "== %s %s: %d mutations\n", g.Group, g.Name, len(g.Mutations))
	referenced := logSources(s)
	baseline, err := runThrough(ctx, s, 0, last, referenced, o)
	if err != nil {
		return nil, err
	}
	g.Runs++
	mutated := make([]map[string]report.Result, len(g.Mutations))
	for i, m := range g.Mutations {
		ms, err := Mutate(s, m)
		if err != nil {
			return nil, err
		}
		if mutated[i], err = runThrough(ctx, ms, max(m.Step, 0), last, referenced, o); err != nil {
			return nil, err
		}
		g.Runs++
		changed := 0
		for id, r := range mutated[i] {
			if b, ok := baseline[id]; ok && r.Verdict != b.Verdict {
				changed++
			}
		}
		fmt.Fprintf(o.Progress, "   %-50s %d verdicts changed\n", m.Name, changed)
	}
	for si, st := range s.Spec.Steps {
		for ei := range st.Expect {
			e := &st.Expect[ei]
			base := baseline[e.ID]
			row := Expectation{ID: e.ID, Step: st.Name, Baseline: base.Verdict, BaselineObserved: base.Observed}
			if base.Verdict != report.Pass {
				row.BaselineMessage = base.Message
			}
			why, declared := e.RegardlessReason()
			row.HoldsRegardless = why
			for i, m := range g.Mutations {
				if !m.Affects(si) {
					continue
				}
				mr := mutated[i][e.ID]
				cell := Cell{Mutation: m.Name, Verdict: mr.Verdict, Flipped: base.Verdict == report.Pass && mr.Verdict != report.Pass, Observed: mr.Observed}
				if mr.Verdict != report.Pass {
					cell.Message = mr.Message
				}
				row.Cells = append(row.Cells, cell)
				if base.Verdict == report.Pass {
					if cell.Flipped {
						row.FlippedBy = append(row.FlippedBy, m.Name)
					} else {
						row.NotMattering = append(row.NotMattering, m.Name)
					}
				}
			}
			if len(row.FlippedBy) > 0 {
				row.FlipsOnlyUnobserved = !slices.ContainsFunc(row.Cells, func(c Cell) bool { return c.Flipped && c.Verdict == report.Fail })
			}
			switch {
			case base.Verdict != report.Pass:
				row.Status = BaselineNotPass
			case declared:
				row.Status = HoldsRegardless
			case len(row.FlippedBy) > 0:
				row.Status = Discriminating
			default:
				row.Status = NotDiscriminating
			}
			g.Expectations = append(g.Expectations, row)
		}
	}
	g.Duration = time.Since(start)
	return g, nil
}

// lastExpectationStep is the index of the last step with an expectation, or -1.
func lastExpectationStep(s *catalog.Scenario) int {
	last := -1
	for i, st := range s.Spec.Steps {
		if len(st.Expect) > 0 {
			last = i
		}
	}
	return last
}

// logSources are the IDs whose probes a log check of the scenario reads (log.after).
func logSources(s *catalog.Scenario) map[string]bool {
	out := map[string]bool{}
	for _, st := range s.Spec.Steps {
		for _, e := range st.Expect {
			for _, c := range e.Checks {
				if c.Log != nil && c.Log.After != "" {
					out[c.Log.After] = true
				}
			}
		}
	}
	return out
}

// runThrough runs s on a fresh runner up to and including step last, and returns each checked
// expectation's result by ID. Steps after the last expectation cannot change a verdict. The
// expectations of steps before first are not checked (a mutation at first cannot change them, and
// the backend is deterministic), except those whose probes a later log check reads.
func runThrough(ctx context.Context, s *catalog.Scenario, first, last int, logSources map[string]bool, o Options) (map[string]report.Result, error) {
	r := runner.New(runner.Options{Backend: o.Backend, Timeouts: o.Timeouts, Transform: o.Transform})
	r.Begin(ctx, s)
	for i := 0; i <= last; i++ {
		st := &s.Spec.Steps[i]
		r.Step(ctx, i, st)
		for j := range st.Expect {
			if i >= first || logSources[st.Expect[j].ID] {
				r.Check(ctx, st, &st.Expect[j])
			}
		}
	}
	if err := r.End(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: interrupted: %w", s.Metadata.Group, err)
	}
	out := map[string]report.Result{}
	for _, res := range r.Results() {
		out[res.ID] = res
	}
	return out, nil
}
