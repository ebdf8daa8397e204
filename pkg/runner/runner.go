// Package runner executes a scenario's steps against a backend and turns each expectation into a
// result: it applies changes, waits for convergence, probes with the consistency rules (several
// successes in a row for a positive, a holding window for a negative), reads access logs, and
// collects diagnostics before any cleanup.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/report"
)

// Options configure a Runner.
type Options struct {
	Backend  backend.Backend
	Timeouts Timeouts
	// Progress receives one line per step and per expectation; nil discards.
	Progress io.Writer
	// ReportDir is reports/<run>; diagnostics go to ReportDir/diagnostics/<ID>.
	ReportDir string
	// Transform rewrites each object before it reaches the backend (the ASM translation where no
	// controller serves the CRD; the hermetic trust adaptation). Nil applies objects as they are.
	Transform func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)
	// OnResult, if set, is called with every result as it is recorded.
	OnResult func(report.Result)
	// Selected, if set, says which expectation IDs the run will check: the probe checks of a
	// step start together when it converged (ConcurrentChecks), and only for these.
	Selected func(id string) bool
	// SerialChecks runs the checks of a step one after another, each when its expectation is
	// reached, instead of starting every probe check of the step together as soon as the step
	// converged (their holding windows then overlap instead of adding up). Deterministic backends
	// always run them one after another: each is a single evaluation.
	SerialChecks bool
}

// Runner runs scenarios one at a time. It is not safe for concurrent use.
type Runner struct {
	o    Options
	info backend.Info

	scenario *catalog.Scenario
	// broken is why the current scenario cannot be observed any more (a failed setup or step).
	broken error
	// missing maps a capability the backend lacks to the step that needed it.
	missing map[string]string
	// notApplied maps each resource file (key) skipped for a missing capability, and not deleted
	// since, to why: an expectation after it is skipped unless it declares independentOf the file.
	notApplied map[string]notApplied
	teardowns  []report.TeardownFailure
	// started records when each expectation's probes began, for access-log reads.
	started map[string]time.Time
	// probes records the markers of each expectation's requests, and verdicts its verdict: a log
	// check reads the entries of the requests of the expectation it names, and only if it passed.
	probes   map[string][]string
	verdicts map[string]report.Verdict
	// unprobed and predUnprobed record, per expectation, why a probe check was skipped (out of
	// model): a log check of its requests is then skipped for that reason, not an error.
	unprobed, predUnprobed map[string]string
	// pred is the backend's second oracle when it predicts besides observing (nil otherwise);
	// predProbes and predVerdicts are probes and verdicts of its predictions, per expectation.
	pred backend.Predictor
	// requiring maps each resource file applied for a capability, and not deleted since, to it:
	// a prediction that does not model the capability cannot predict what depends on the file.
	requiring    map[string]string
	predProbes   map[string][]string
	predVerdicts map[string]report.Verdict
	results      []report.Result
	// adaptations are the changes Transform made to catalog objects (Adaptations), each once.
	adaptations    []report.Adaptation
	seenAdaptation map[report.Adaptation]bool
	timing         Timing
	// groups is each scenario's share of the time, in the order they ran.
	groups []report.GroupTiming
	begun  time.Time
	// mu guards timing and groups while the probe checks of a step run together.
	mu sync.Mutex
	// pre holds the step's probe checks started together (startChecks), by expectation and check;
	// stopChecks cancels and waits for them.
	pre     map[checkKey]*startedCheck
	preStop context.CancelFunc
	preWG   sync.WaitGroup
}

type checkKey struct {
	id    string
	check int
}

// startedCheck is a probe check started when its step converged.
type startedCheck struct {
	done chan struct{}
	cr   report.CheckResult
}

// Timing is where a run's time went, summed over every scenario: what a live run's wall time is
// made of besides setup and teardown.
type Timing struct {
	// Converge is the time spent waiting for the proxies to hold each step's changes.
	Converge time.Duration
	// Probes is the time spent inside the backend's probes (curl runs, or model evaluations).
	Probes time.Duration
	// Holds is the time negative expectations spent holding after they first held.
	Holds time.Duration
	// Logs is the time spent reading access logs until an entry matched (or the bound passed).
	Logs time.Duration
	// Predictions is the time spent in a second oracle's predictions (--probe curl,xds).
	Predictions time.Duration
}

// Timing returns where the run's time went so far.
func (r *Runner) Timing() Timing { return r.timing }

// GroupTimings returns each scenario's share of the time so far, in the order they ran.
func (r *Runner) GroupTimings() []report.GroupTiming {
	return append([]report.GroupTiming(nil), r.groups...)
}

// spent adds a probe's, a hold's or a log read's time to the run's and the scenario's totals.
func (r *Runner) spent(probes, holds, logs time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timing.Probes += probes
	r.timing.Holds += holds
	r.timing.Logs += logs
	g := r.group()
	g.Probes += probes
	g.Holds += holds
	g.Logs += logs
}

// group is the current scenario's timing (a scratch one outside a scenario).
func (r *Runner) group() *report.GroupTiming {
	if r.scenario == nil || len(r.groups) == 0 {
		return &report.GroupTiming{}
	}
	return &r.groups[len(r.groups)-1]
}

// New makes a runner.
func New(o Options) *Runner {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Timeouts == (Timeouts{}) {
		o.Timeouts = DefaultTimeouts()
	}
	r := &Runner{o: o, info: o.Backend.Info()}
	if p, ok := o.Backend.(backend.Predictor); ok && p.PredictionOracle() != "" {
		r.pred = p
	}
	return r
}

// Results returns every result recorded so far, in order.
func (r *Runner) Results() []report.Result { return r.results }

// TeardownFailures returns every failed teardown so far.
func (r *Runner) TeardownFailures() []report.TeardownFailure { return r.teardowns }

type notApplied struct{ capability, why string }

func (r *Runner) record(res report.Result) {
	r.results = append(r.results, res)
	if r.o.OnResult != nil {
		r.o.OnResult(res)
	}
}

// baseResult is the identity of an expectation's result, before any verdict.
func (r *Runner) baseResult(s *catalog.Scenario, st *catalog.Step, e *catalog.Expectation) report.Result {
	res := report.Result{
		ID: e.ID, Group: s.Metadata.Group, Scenario: s.Metadata.Name, Profile: s.Spec.Profile, Step: st.Name,
		Kind: e.Kind, Source: e.Source, Drift: e.Drift,
		Backend: r.info.Name, Oracle: r.info.Oracle,
	}
	var froms, requests, expected []string
	for _, c := range e.Checks {
		if c.Log != nil {
			froms = appendUnique(froms, c.Log.Workload)
			requests = append(requests, "log")
			expected = append(expected, "log "+c.Log.Entry.String())
		} else {
			froms = appendUnique(froms, c.From)
			requests = append(requests, strings.TrimPrefix(c.Curl, "curl "))
			if c.Expect != nil {
				expected = append(expected, c.Expect.String())
			}
		}
	}
	res.From, res.Request, res.Expected = strings.Join(froms, ", "), strings.Join(requests, "; "), strings.Join(expected, "; ")
	return res
}

// NotRun records an error result for an expectation that never ran (the run was interrupted
// before it, or its spec ended without a result); why says which. It is never a pass.
func (r *Runner) NotRun(s *catalog.Scenario, st *catalog.Step, e *catalog.Expectation, why string) report.Result {
	res := r.RecordNotRun(s, st, e, why)
	r.progress("   NOT RUN %-12s %s", e.ID, why)
	return res
}

// RecordNotRun is NotRun without the progress line, for a caller that prints one line for many
// (an interrupted run's remaining expectations).
func (r *Runner) RecordNotRun(s *catalog.Scenario, st *catalog.Step, e *catalog.Expectation, why string) report.Result {
	res := r.baseResult(s, st, e)
	res.Verdict, res.NotRun, res.Message, res.Observed = report.Error, true, "not run: "+why, "not run"
	if r.pred != nil {
		res.Predictions = []report.Prediction{{Oracle: r.pred.PredictionOracle(), Verdict: report.Error, Observed: "not run", Message: "not predicted: " + why}}
	}
	r.record(res)
	return res
}

func (r *Runner) progress(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, format+"\n", args...)
}

// RunScenario runs a whole scenario: setup, every step with its expectations, teardown.
func (r *Runner) RunScenario(ctx context.Context, s *catalog.Scenario) error {
	r.Begin(ctx, s)
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		r.Step(ctx, i, st)
		for j := range st.Expect {
			r.Check(ctx, st, &st.Expect[j])
		}
	}
	return r.End(ctx)
}

// Begin sets a scenario up. A failure is recorded: every expectation of the scenario then ends as
// an error naming it.
func (r *Runner) Begin(ctx context.Context, s *catalog.Scenario) {
	r.scenario, r.broken = s, nil
	r.missing = map[string]string{}
	r.notApplied = map[string]notApplied{}
	r.started = map[string]time.Time{}
	r.probes = map[string][]string{}
	r.verdicts = map[string]report.Verdict{}
	r.predProbes = map[string][]string{}
	r.predVerdicts = map[string]report.Verdict{}
	r.unprobed, r.predUnprobed = map[string]string{}, map[string]string{}
	r.requiring = map[string]string{}
	start := time.Now()
	r.groups = append(r.groups, report.GroupTiming{Group: s.Metadata.Group})
	r.begun = start
	defer func() { r.group().Setup = time.Since(start) }()
	r.progress("\n== %s %s: %s [backend %s, %s]", s.Metadata.Group, s.Metadata.Name, s.Spec.Title, r.info.Name, r.info.Oracle)
	cctx, cancel := context.WithTimeout(ctx, r.o.Timeouts.Setup)
	defer cancel()
	if err := r.o.Backend.Setup(cctx, s); err != nil {
		r.broken = fmt.Errorf("setup of %s failed: %w", s.Metadata.Group, err)
		r.progress("   setup FAILED after %s: %v", since(start), err)
		return
	}
	r.progress("   setup %s", since(start))
}

// Step runs one step's actions in their fixed order, then waits for convergence.
func (r *Runner) Step(ctx context.Context, index int, st *catalog.Step) {
	if r.broken != nil {
		return
	}
	r.stopChecks()
	start := time.Now()
	g := r.group()
	err := r.actions(ctx, st)
	g.Actions += time.Since(start)
	if err != nil {
		r.broken = fmt.Errorf("step %d %q failed: %w", index+1, st.Name, err)
		r.progress("   step %d/%d %s: FAILED after %s: %v", index+1, len(r.scenario.Spec.Steps), st.Name, since(start), err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.Timeouts.Converge)
	defer cancel()
	convergeStart := time.Now()
	err = r.o.Backend.Converge(cctx)
	waited := time.Since(convergeStart)
	r.timing.Converge += waited
	g.Converge += waited
	g.ApplyToConverged = append(g.ApplyToConverged, time.Since(start))
	if err != nil {
		r.broken = fmt.Errorf("step %d %q: proxies did not converge: %w", index+1, st.Name, err)
		r.progress("   step %d/%d %s: NOT CONVERGED after %s: %v", index+1, len(r.scenario.Spec.Steps), st.Name, since(start), err)
		return
	}
	r.progress("   step %d/%d %s (%s)", index+1, len(r.scenario.Spec.Steps), st.Name, since(start))
	r.startChecks(ctx, st)
}

// startChecks starts every probe check of the step's selected expectations at once, so their
// probing and holding windows overlap; Check then waits for its own. Each keeps the consistency
// rules (several successes in a row, a negative holding), and each request is its own (its own
// marker and source port), so the log checks still read their own requests' entries. Not on a
// deterministic backend (one evaluation each) or with SerialChecks.
func (r *Runner) startChecks(ctx context.Context, st *catalog.Step) {
	if r.o.SerialChecks || r.info.Deterministic || st.Serial {
		return
	}
	// The checks outlive the spec that converged the step: they end with stopChecks (the next
	// step, the teardown, an interrupted check), not with that spec's context.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.pre, r.preStop = map[checkKey]*startedCheck{}, cancel
	now := time.Now()
	for i := range st.Expect {
		e := &st.Expect[i]
		if (r.o.Selected != nil && !r.o.Selected(e.ID)) || e.ID == "" {
			continue
		}
		if v, _, _ := r.precheck(e); v != "" {
			continue
		}
		for ci, c := range e.Checks {
			if c.Log != nil {
				continue
			}
			sc := &startedCheck{done: make(chan struct{})}
			r.pre[checkKey{e.ID, ci}] = sc
			r.started[e.ID] = now
			r.preWG.Add(1)
			go func() {
				defer r.preWG.Done()
				defer close(sc.done)
				defer func() {
					if p := recover(); p != nil {
						sc.cr = report.CheckResult{Description: c.Description(), Expected: c.Expect.String(), Verdict: report.Error,
							Message: fmt.Sprintf("panic in check: %v", p)}
					}
				}()
				sc.cr = r.runCheck(cctx, e, c)
			}()
		}
	}
}

// stopChecks cancels the step's started checks that nobody waited for (an expectation not
// reached) and waits until they have ended, so no request of a step overlaps the next change.
func (r *Runner) stopChecks() {
	if r.preStop != nil {
		r.preStop()
		r.preStop = nil
	}
	r.preWG.Wait()
	r.pre = nil
}

// check returns the result of the expectation's check number i: the one startChecks started,
// else it runs now.
func (r *Runner) check(ctx context.Context, e *catalog.Expectation, i int, c catalog.Check) report.CheckResult {
	sc := r.pre[checkKey{e.ID, i}]
	if sc == nil {
		return r.runCheck(ctx, e, c)
	}
	select {
	case <-sc.done:
		return sc.cr
	case <-ctx.Done():
		r.stopChecks()
		return report.CheckResult{Description: c.Description(), Expected: c.Expect.String(), Verdict: report.Error,
			Message: "interrupted: " + ctx.Err().Error()}
	}
}

func (r *Runner) actions(ctx context.Context, st *catalog.Step) error {
	b, s := r.o.Backend, r.scenario
	if st.MeshPolicy != "" {
		if err := b.SetMeshPolicy(ctx, st.MeshPolicy); err != nil {
			return fmt.Errorf("meshPolicy %s: %w", st.MeshPolicy, err)
		}
	}
	for _, res := range st.Delete {
		if _, ok := r.notApplied[res.Key()]; ok {
			// Never applied: nothing to delete, and later expectations no longer depend on it.
			delete(r.notApplied, res.Key())
			r.progress("   not deleting %s: it was not applied", res.Key())
			continue
		}
		m, err := r.manifest(res)
		if err != nil {
			return err
		}
		if err := b.Delete(ctx, m); err != nil {
			return fmt.Errorf("delete %s: %w", res.Key(), err)
		}
		delete(r.requiring, res.Key())
	}
	for _, ref := range st.Remove {
		w, _ := s.Workload(ref)
		if err := b.Remove(ctx, w); err != nil {
			return fmt.Errorf("remove %s: %w", ref, err)
		}
	}
	for _, ref := range st.Deploy {
		w, _ := s.Workload(ref)
		if err := b.Deploy(ctx, w); err != nil {
			return fmt.Errorf("deploy %s: %w", ref, err)
		}
	}
	for _, res := range st.Apply {
		if res.Requires != "" && !r.info.Capabilities[res.Requires] {
			r.missing[res.Requires] = fmt.Sprintf("backend %s lacks capability %q needed by %s%s", r.info.Name, res.Requires, res.Key(), r.capabilityReason(res.Requires))
			r.notApplied[res.Key()] = notApplied{capability: res.Requires, why: fmt.Sprintf("%s was not applied: backend %s lacks capability %q", res.Key(), r.info.Name, res.Requires)}
			r.progress("   not applying %s: %s", res.Key(), r.missing[res.Requires])
			continue
		}
		m, err := r.manifest(res)
		if err != nil {
			return err
		}
		if err := b.Apply(ctx, m); err != nil {
			return fmt.Errorf("apply %s: %w", res.Key(), err)
		}
		if res.Requires != "" {
			r.requiring[res.Key()] = res.Requires
		}
	}
	return nil
}

func (r *Runner) manifest(res catalog.Resources) (backend.Manifest, error) {
	objs, err := r.scenario.Objects(res)
	if err != nil {
		return backend.Manifest{}, err
	}
	if r.o.Transform != nil {
		var out []*unstructured.Unstructured
		for _, o := range objs {
			orig := o.DeepCopy()
			t, err := r.o.Transform(o)
			if err != nil {
				return backend.Manifest{}, fmt.Errorf("%s: %s %s: %w", res.File, o.GetKind(), o.GetName(), err)
			}
			if len(t) != 1 || t[0] != o {
				r.noteAdaptations(res, orig, t)
			} else if !reflect.DeepEqual(orig.Object, o.Object) {
				// Changed in place.
				r.noteAdaptations(res, orig, []*unstructured.Unstructured{o.DeepCopy()})
			}
			out = append(out, t...)
		}
		objs = out
	}
	return backend.Manifest{Key: res.Key(), Objects: objs}, nil
}

// Check evaluates one expectation and records its result. A panic inside it (a backend, a
// check) is recorded as an error result naming the panic: every expectation ends with a result.
func (r *Runner) Check(ctx context.Context, st *catalog.Step, e *catalog.Expectation) (res report.Result) {
	s := r.scenario
	res = r.baseResult(s, st, e)
	recorded := false
	start := time.Now()
	called := start
	if t, ok := r.started[e.ID]; ok {
		start = t // its probes started with the step's (startChecks)
	}
	defer func() {
		waited := time.Since(called)
		r.mu.Lock()
		r.group().Checks += waited
		r.mu.Unlock()
	}()
	defer func() {
		if p := recover(); p != nil {
			if recorded {
				panic(p)
			}
			res.Verdict, res.Message = report.Error, fmt.Sprintf("panic in check: %v", p)
			if r.pred != nil {
				res.Predictions = []report.Prediction{{Oracle: r.pred.PredictionOracle(), Verdict: report.Error, Message: "not predicted: " + res.Message}}
			}
			res.Duration = time.Since(start)
			r.record(res)
			r.progress("   ERROR %-12s %s", e.ID, res.Message)
		}
	}()
	r.started[e.ID] = start
	res.Verdict, res.Message, res.Capability = r.precheck(e)
	if res.Verdict == "" {
		res.Verdict = report.Pass
		var observed []string
		for ci, c := range e.Checks {
			cr := r.check(ctx, e, ci, c)
			if r.pred != nil {
				// Predicted after the observation, on the same converged state.
				if why, capability := r.unpredictable(e); why != "" {
					cr.Prediction = &report.Prediction{Oracle: r.pred.PredictionOracle(), Verdict: report.Skip, Message: why, Capability: capability}
				} else {
					cr.Prediction = r.predictCheck(ctx, e, c)
				}
				r.predProbes[e.ID] = append(r.predProbes[e.ID], cr.Prediction.Probes...)
				if c.Log == nil && cr.Prediction.Verdict == report.Skip && (cr.Prediction.Observed == "out of model" || len(cr.Prediction.Probes) == 0) {
					r.predUnprobed[e.ID] = cr.Prediction.Message
				}
			}
			res.Checks = append(res.Checks, cr)
			r.probes[e.ID] = append(r.probes[e.ID], cr.Probes...)
			if c.Log == nil && cr.Verdict == report.Skip && (cr.Observed == "out of model" || len(cr.Probes) == 0) {
				r.unprobed[e.ID] = cr.Message
			}
			observed = append(observed, cr.Observed)
			if cr.Verdict != report.Pass && (res.Verdict == report.Pass || (res.Verdict == report.Skip && cr.Verdict != report.Skip)) {
				res.Verdict = cr.Verdict
				res.Message = fmt.Sprintf("%s: %s", cr.Description, cr.Message)
			}
		}
		res.Observed = strings.Join(observed, "; ")
		if r.pred != nil {
			res.Predictions = []report.Prediction{predictionOf(r.pred.PredictionOracle(), res.Checks)}
		}
	} else if r.pred != nil {
		// Not observable at all: not predicted either, for the same reason.
		p := report.Prediction{Oracle: r.pred.PredictionOracle(), Verdict: res.Verdict, Message: res.Message, Capability: res.Capability}
		if p.Verdict == report.Error {
			p.Message = "not predicted: " + res.Message
		}
		res.Predictions = []report.Prediction{p}
	}
	res.Duration = time.Since(start)
	r.verdicts[e.ID] = res.Verdict
	if r.pred != nil {
		r.predVerdicts[e.ID] = res.Predictions[0].Verdict
	}
	if res.Verdict == report.Fail || res.Verdict == report.Error {
		dir := filepath.Join(r.o.ReportDir, "diagnostics", e.ID)
		if r.o.ReportDir != "" {
			if err := r.o.Backend.Diagnostics(ctx, dir); err != nil {
				res.Message += fmt.Sprintf(" (diagnostics incomplete: %v)", err)
			}
			res.Diagnostics = dir
		}
	}
	recorded = true
	r.record(res)
	switch res.Verdict {
	case report.Pass:
		r.progress("   ok   %-12s %s (%s)", e.ID, res.Observed, since(start))
	case report.Skip:
		r.progress("   skip %-12s %s", e.ID, res.Message)
	default:
		line := fmt.Sprintf("   %-4s %-12s %s", strings.ToUpper(string(res.Verdict)), e.ID, res.Message)
		if res.Diagnostics != "" {
			line += " -- diagnostics: " + res.Diagnostics
		}
		r.progress("%s", line)
	}
	// A prediction that differs from the observation is said under it; one that agrees is not.
	for _, p := range res.Predictions {
		if p.Verdict != res.Verdict || p.Observed != res.Observed {
			what := strings.ToUpper(string(p.Verdict))
			if p.Observed != "" {
				what += fmt.Sprintf(" %q", p.Observed)
			}
			r.progress("        %-12s predicted (%s): %s%s", "", p.Oracle, what, messageSuffix(p.Message))
		}
	}
	return res
}

// precheck decides an expectation that cannot be observed at all: a broken scenario is an error,
// a missing capability (its own, or a resource file skipped for one that the expectation does not
// declare itself independentOf) or an unobservable workload is a skip with its reason. The third
// value is the missing capability of a capability skip.
func (r *Runner) precheck(e *catalog.Expectation) (report.Verdict, string, string) {
	if r.broken != nil {
		return report.Error, "not observed: " + r.broken.Error(), ""
	}
	if e.Requires != "" && !r.info.Capabilities[e.Requires] {
		if why, ok := r.missing[e.Requires]; ok {
			return report.Skip, why, e.Requires
		}
		return report.Skip, fmt.Sprintf("backend %s lacks capability %q%s", r.info.Name, e.Requires, r.capabilityReason(e.Requires)), e.Requires
	}
	for _, c := range e.Checks {
		ref := c.From
		if c.Log != nil {
			ref = c.Log.Workload
		}
		w, _ := r.scenario.Workload(ref)
		if why := r.o.Backend.Unobservable(w); why != "" {
			return report.Skip, fmt.Sprintf("%s: %s", ref, why), ""
		}
	}
	for _, key := range sortedKeys(r.notApplied) {
		if !e.IndependentOfFile(key) {
			na := r.notApplied[key]
			return report.Skip, "depends on a step that did not run: " + na.why, na.capability
		}
	}
	return "", "", ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (r *Runner) runCheck(ctx context.Context, e *catalog.Expectation, c catalog.Check) report.CheckResult {
	if c.Log != nil {
		return r.logCheck(ctx, e, c)
	}
	cr := r.probeCheck(ctx, c)
	if ic, ok := r.o.Backend.(backend.InterceptionChecker); ok && (cr.Verdict == report.Pass || cr.Verdict == report.Fail) {
		w, _ := r.scenario.Workload(c.From)
		if w.HasSidecar() {
			if err := ic.Intercepted(ctx, w, cr.Probes); err != nil {
				cr.Verdict, cr.Message = report.Error, fmt.Sprintf("not observed through the mesh (observed %s): %v", cr.Observed, err)
			}
		}
	}
	return cr
}

// probeCheck probes until the expectation holds by the consistency rules or the bound passes.
// A deterministic backend is probed once. A probe that did not run is an error at once.
func (r *Runner) probeCheck(ctx context.Context, c catalog.Check) report.CheckResult {
	t := r.o.Timeouts
	w, _ := r.scenario.Workload(c.From)
	cr := report.CheckResult{Description: c.Description(), Expected: c.Expect.String()}
	start := time.Now()
	defer func() { cr.Duration = time.Since(start) }()

	need, hold := 1, time.Duration(0)
	if !r.info.Deterministic {
		if c.Expect.Positive() {
			need = max(t.PositiveSuccesses, 1)
		} else {
			hold = t.NegativeHold
		}
	}
	deadline := start.Add(t.Eventually)
	run := 0
	var firstHeld time.Time
	for {
		probeStart := time.Now()
		obs, err := r.o.Backend.Probe(ctx, w, c.Request)
		r.spent(time.Since(probeStart), 0, 0)
		cr.Attempts++
		if obs.Probe != "" {
			cr.Probes = append(cr.Probes, obs.Probe)
		}
		var oom *outcome.OutOfModelError
		if errors.As(err, &oom) {
			cr.Verdict, cr.Observed, cr.Message = report.Skip, "out of model", oom.Error()
			return cr
		}
		if err != nil {
			cr.Verdict, cr.Observed = report.Error, "probe did not run"
			cr.Message = err.Error()
			return cr
		}
		cr.Observed = obs.Summary()
		mismatch := outcome.Match(c.Expect, obs)
		// A part of the expectation a prediction cannot evaluate (elapsed time): skipped with
		// the reason, never a pass on the parts it could.
		if errors.As(mismatch, &oom) {
			cr.Verdict, cr.Message = report.Skip, oom.Error()
			return cr
		}
		if mismatch == nil {
			run++
			if firstHeld.IsZero() {
				firstHeld = time.Now()
			}
		} else {
			if !firstHeld.IsZero() && hold > 0 {
				cr.Verdict = report.Fail
				cr.Message = fmt.Sprintf("held for %s then broke: %v", time.Since(firstHeld).Round(time.Millisecond), mismatch)
				return cr
			}
			run, firstHeld = 0, time.Time{}
		}
		if run >= need && (hold == 0 || time.Since(firstHeld) >= hold) {
			if hold > 0 {
				r.spent(0, time.Since(firstHeld), 0)
			}
			cr.Verdict = report.Pass
			return cr
		}
		if mismatch != nil && (r.info.Deterministic || time.Now().After(deadline)) {
			cr.Verdict, cr.Message = report.Fail, mismatch.Error()
			if !r.info.Deterministic {
				cr.Message += fmt.Sprintf(" (after %d probes over %s)", cr.Attempts, time.Since(start).Round(time.Millisecond))
			}
			return cr
		}
		if err := pause(ctx, t.ProbeInterval); err != nil {
			cr.Verdict, cr.Message = report.Error, "interrupted: "+err.Error()
			return cr
		}
	}
}

// logCheck reads the workload's proxy log for the entries of the requests of the expectation
// named by After (default this one), since it started, until an entry matches or the bound
// passes. It never reads a neighbour's entry: only entries carrying the marker of one of those
// requests count, and an expectation named by After must have passed.
func (r *Runner) logCheck(ctx context.Context, e *catalog.Expectation, c catalog.Check) report.CheckResult {
	w, _ := r.scenario.Workload(c.Log.Workload)
	cr := report.CheckResult{Description: c.Description(), Expected: c.Log.Entry.String()}
	start := time.Now()
	defer func() { cr.Duration = time.Since(start); r.spent(0, 0, cr.Duration) }()
	after := logOf(e, c)
	since, ok := r.started[after]
	if !ok {
		cr.Verdict, cr.Message = report.Error, fmt.Sprintf("expectation %s has not run, so its log cannot be read", after)
		return cr
	}
	if why, skipped := r.unprobed[after]; skipped {
		cr.Verdict, cr.Observed = report.Skip, "log not read"
		cr.Message = fmt.Sprintf("reads the log of the requests of %s, which were not made: %s", after, why)
		return cr
	}
	if v, done := r.verdicts[after]; done && v != report.Pass {
		cr.Verdict, cr.Observed = report.Error, "log not read"
		cr.Message = fmt.Sprintf("reads the log of the requests of %s, which did not pass (%s)", after, v)
		return cr
	}
	mine := map[string]bool{}
	for _, m := range r.probes[after] {
		mine[m] = true
	}
	if len(mine) == 0 {
		cr.Verdict, cr.Observed = report.Error, "log not read"
		cr.Message = fmt.Sprintf("expectation %s made no request whose log entries could be told apart", after)
		return cr
	}
	deadline := start.Add(r.o.Timeouts.AccessLog)
	for {
		entries, err := r.o.Backend.AccessLog(ctx, w, since)
		cr.Attempts++
		if err != nil {
			cr.Verdict, cr.Observed, cr.Message = report.Error, "log not read", err.Error()
			return cr
		}
		entries = ownEntries(entries, mine)
		if c.Log.Host != "" {
			entries = filterHost(entries, c.Log.Host)
		}
		err = outcome.MatchLog(c.Log.Entry, entries)
		if err == nil {
			cr.Verdict, cr.Observed = report.Pass, "log "+c.Log.Entry.String()
			return cr
		}
		cr.Observed = fmt.Sprintf("%d entries of %s's requests, none matching", len(entries), after)
		if r.info.Deterministic || time.Now().After(deadline) {
			cr.Verdict, cr.Message = report.Fail, err.Error()
			return cr
		}
		if err := pause(ctx, r.o.Timeouts.ProbeInterval); err != nil {
			cr.Verdict, cr.Message = report.Error, "interrupted: "+err.Error()
			return cr
		}
	}
}

// ownEntries keeps the entries that carry one of the markers.
func ownEntries(entries []outcome.LogEntry, markers map[string]bool) []outcome.LogEntry {
	var out []outcome.LogEntry
	for _, e := range entries {
		if markers[e[outcome.LogFieldProbe]] {
			out = append(out, e)
		}
	}
	return out
}

func filterHost(entries []outcome.LogEntry, host string) []outcome.LogEntry {
	var out []outcome.LogEntry
	for _, e := range entries {
		if e["authority"] == host || e["requested_server_name"] == host {
			out = append(out, e)
		}
	}
	return out
}

// End tears the scenario down, restoring what it changed.
func (r *Runner) End(ctx context.Context) error {
	if r.scenario == nil {
		return nil
	}
	r.stopChecks()
	start := time.Now()
	g := r.group()
	defer func() {
		g.Teardown = time.Since(start)
		if len(r.groups) > 0 {
			g.Wall = time.Since(r.begun)
		}
	}()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeouts.Teardown)
	defer cancel()
	err := r.o.Backend.Teardown(cctx, r.scenario)
	if err != nil {
		r.progress("   teardown FAILED after %s: %v", since(start), err)
		r.teardowns = append(r.teardowns, report.TeardownFailure{Group: r.scenario.Metadata.Group, Scenario: r.scenario.Metadata.Name, Error: err.Error()})
		err = fmt.Errorf("teardown of %s: %w", r.scenario.Metadata.Group, err)
	} else {
		r.progress("   teardown %s", since(start))
	}
	r.scenario = nil
	return err
}

// pause waits d unless ctx ends first. It spaces probes of a poll; it never stands in for a
// condition.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func appendUnique(xs []string, x string) []string {
	for _, v := range xs {
		if v == x {
			return xs
		}
	}
	return append(xs, x)
}

// capabilityReason is ": why" when the backend says why it lacks the capability, else "".
func (r *Runner) capabilityReason(c string) string {
	if why := r.info.CapabilityReasons[c]; why != "" {
		return ": " + why
	}
	return ""
}

// predictionOf is an expectation's prediction from its checks' predictions, by the rule that
// gives its observed verdict: the first check not passed decides, an error or fail over a skip.
func predictionOf(o backend.Oracle, checks []report.CheckResult) report.Prediction {
	p := report.Prediction{Oracle: o, Verdict: report.Pass}
	var observed []string
	for _, cr := range checks {
		cp := cr.Prediction
		if cp == nil {
			cp = &report.Prediction{Verdict: report.Error, Message: "no prediction recorded"}
		}
		observed = append(observed, cp.Observed)
		if cp.Verdict != report.Pass && (p.Verdict == report.Pass || (p.Verdict == report.Skip && cp.Verdict != report.Skip)) {
			p.Verdict, p.Capability = cp.Verdict, cp.Capability
			p.Message = fmt.Sprintf("%s: %s", cr.Description, cp.Message)
		}
	}
	p.Observed = strings.Join(observed, "; ")
	return p
}

// predictCheck predicts one check once from the backend's second oracle: a probe check from the
// request, a log check from the entries the predictions of the expectation it names wrote. An
// error is the prediction's error, never a pass.
func (r *Runner) predictCheck(ctx context.Context, e *catalog.Expectation, c catalog.Check) *report.Prediction {
	p := &report.Prediction{Oracle: r.pred.PredictionOracle()}
	if c.Log != nil {
		r.predictLog(ctx, e, c, p)
		return p
	}
	w, _ := r.scenario.Workload(c.From)
	start := time.Now()
	obs, err := r.pred.Predict(ctx, w, c.Request)
	r.timing.Predictions += time.Since(start)
	if obs.Probe != "" && err == nil {
		p.Probes = []string{obs.Probe}
	}
	var oom *outcome.OutOfModelError
	switch {
	case errors.As(err, &oom):
		p.Verdict, p.Observed, p.Message = report.Skip, "out of model", oom.Error()
		return p
	case err != nil:
		p.Verdict, p.Observed, p.Message = report.Error, "prediction did not run", err.Error()
		return p
	}
	p.Observed = obs.Summary()
	mismatch := outcome.Match(c.Expect, obs)
	switch {
	case errors.As(mismatch, &oom):
		p.Verdict, p.Message = report.Skip, oom.Error()
	case mismatch != nil:
		p.Verdict, p.Message = report.Fail, mismatch.Error()
	default:
		p.Verdict = report.Pass
	}
	return p
}

// logOf is the expectation whose requests a log check reads: After, by default its own.
func logOf(e *catalog.Expectation, c catalog.Check) string {
	if c.Log.After != "" {
		return c.Log.After
	}
	return e.ID
}

// predictLog is logCheck on the predictions' own access-log entries: only entries carrying the
// marker of a predicted request of the expectation named by After (default this one) count, and
// that expectation's prediction must have passed. Predictions are deterministic: read once.
func (r *Runner) predictLog(ctx context.Context, e *catalog.Expectation, c catalog.Check, p *report.Prediction) {
	w, _ := r.scenario.Workload(c.Log.Workload)
	after := logOf(e, c)
	since, ok := r.started[after]
	if !ok {
		p.Verdict, p.Message = report.Error, fmt.Sprintf("expectation %s has not run, so its predicted log cannot be read", after)
		return
	}
	if why, skipped := r.predUnprobed[after]; skipped {
		p.Verdict, p.Observed = report.Skip, "log not read"
		p.Message = fmt.Sprintf("reads the predicted log of the requests of %s, which were not predicted: %s", after, why)
		return
	}
	if v, done := r.predVerdicts[after]; done && v != report.Pass {
		p.Verdict, p.Observed = report.Error, "log not read"
		p.Message = fmt.Sprintf("reads the predicted log of the requests of %s, whose prediction did not pass (%s)", after, v)
		return
	}
	mine := map[string]bool{}
	for _, m := range r.predProbes[after] {
		mine[m] = true
	}
	if len(mine) == 0 {
		p.Verdict, p.Observed = report.Error, "log not read"
		p.Message = fmt.Sprintf("expectation %s made no predicted request whose log entries could be told apart", after)
		return
	}
	entries, err := r.pred.PredictedAccessLog(ctx, w, since)
	if err != nil {
		p.Verdict, p.Observed, p.Message = report.Error, "log not read", err.Error()
		return
	}
	entries = ownEntries(entries, mine)
	if c.Log.Host != "" {
		entries = filterHost(entries, c.Log.Host)
	}
	if err := outcome.MatchLog(c.Log.Entry, entries); err != nil {
		p.Verdict, p.Message = report.Fail, err.Error()
		p.Observed = fmt.Sprintf("%d predicted entries of %s's requests, none matching", len(entries), after)
		return
	}
	p.Verdict, p.Observed = report.Pass, "log "+c.Log.Entry.String()
}

// unpredictable says why the second oracle cannot predict the expectation, and the capability it
// lacks: the expectation needs one the predictions do not model, or depends on a file applied
// for one (unless it declares itself independentOf the file).
func (r *Runner) unpredictable(e *catalog.Expectation) (string, string) {
	caps := r.pred.PredictionCapabilities()
	if e.Requires != "" && !caps[e.Requires] {
		return fmt.Sprintf("%s does not model capability %q", r.pred.PredictionOracle(), e.Requires), e.Requires
	}
	for _, key := range sortedKeys(r.requiring) {
		if c := r.requiring[key]; !caps[c] && !e.IndependentOfFile(key) {
			return fmt.Sprintf("depends on %s, applied for capability %q, which %s does not model", key, c, r.pred.PredictionOracle()), c
		}
	}
	return "", ""
}

func messageSuffix(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}
