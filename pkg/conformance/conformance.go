// Package conformance is the thin entry point that runs a catalog against a backend through the
// Ginkgo suite and writes the reports. The CLI calls it; a vendor can call it from a Go test.
package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/suites"
)

// Options of one conformance run.
type Options struct {
	Backend backend.Backend
	// Catalog defaults to the built-in one.
	Catalog *catalog.Catalog
	// Groups limits the run to these groups (IDs or names); IDs focuses on these expectation IDs.
	Groups []string
	IDs    []string
	// SerialChecks runs each step's checks one after another (runner.Options.SerialChecks).
	SerialChecks bool
	// Timeouts default to runner.DefaultTimeouts.
	Timeouts runner.Timeouts
	// ReportsDir is where reports/<run>/ is created (default "reports").
	ReportsDir string
	// RunID names the run (default: time and backend).
	RunID          string
	Implementation report.Implementation
	Progress       io.Writer
	// Transform rewrites objects before they reach the backend (see runner.Options).
	Transform func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)
	// Measure, if set, adds measurements to the run after the suite (wall time is always recorded).
	Measure func(run *report.Run)
	// GinkgoVerbose streams Ginkgo's spec-by-spec output (with Ginkgo's own report of an
	// interrupt: every goroutine's stack); otherwise it goes to GinkgoOutputFile.
	GinkgoVerbose bool
	// Context, when it ends (SIGINT, a cancelled run), interrupts the run: the running
	// expectation stops, later ones are reported as not run, teardowns still run. Nil never ends.
	Context context.Context
	// CatalogName names the catalog in the reports (default "built-in" when Catalog is nil,
	// "custom" otherwise).
	CatalogName string
	// OnResult, if set, sees every result as it is recorded (progress, tests).
	OnResult func(report.Result)
	// Offline, read from OfflineFile, is an offline (--backend sim) run of the same catalog whose
	// answers join this run's results as predictions (--offline-from). Checked before anything
	// runs (CheckOffline).
	Offline     *report.Run
	OfflineFile string
}

// CheckOffline checks, before a run, that src (read from file) can join a run of catalog full
// named catalogName with this selection: an offline run of the same catalog holding every
// selected ID (report.CheckOffline).
func CheckOffline(src *report.Run, file, catalogName string, full *catalog.Catalog, groups, ids []string) error {
	c, err := Select(full, Dedup(groups), Dedup(ids))
	if err != nil {
		return err
	}
	sel := NewSelection(catalogName, full, c, Dedup(groups), Dedup(ids))
	return report.CheckOffline(src, file, catalogName, sel.SelectedIDs)
}

// ValidateRunID refuses a run name that is not a single plain path element: reports/<run>/ must
// stay inside the reports directory on every backend.
func ValidateRunID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("--run-id: must not be empty")
	case id == "." || id == ".." || strings.Contains(id, ".."):
		return fmt.Errorf("--run-id %q: must not contain \"..\"", id)
	case strings.ContainsAny(id, `/\`) || filepath.Base(id) != id:
		return fmt.Errorf("--run-id %q: must not contain a path separator", id)
	case !runIDPattern.MatchString(id):
		return fmt.Errorf("--run-id %q: use letters, digits, '-', '_' and '.' (at most 63, starting with a letter or digit)", id)
	}
	return nil
}

var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Select returns the catalog limited to the given groups, erroring on an unknown one, and checks
// that every requested ID exists. A group named twice (by ID and by name, or twice alike) is
// selected once, in catalog order.
func Select(c *catalog.Catalog, groups, ids []string) (*catalog.Catalog, error) {
	out := c
	if len(groups) > 0 {
		want := map[*catalog.Scenario]bool{}
		for _, g := range groups {
			s, err := c.Group(g)
			if err != nil {
				return nil, err
			}
			want[s] = true
		}
		out = &catalog.Catalog{Hosts: c.Hosts}
		for _, s := range c.Scenarios {
			if want[s] {
				out.Scenarios = append(out.Scenarios, s)
			}
		}
	}
	known := map[string]bool{}
	for _, id := range out.IDs() {
		known[id] = true
	}
	for _, id := range ids {
		if !known[id] {
			return nil, fmt.Errorf("unknown expectation ID %q; valid IDs: %s", id, strings.Join(out.IDs(), ", "))
		}
	}
	return out, nil
}

// Dedup returns xs without repeats, in first-seen order.
func Dedup(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// NewSelection records what groups and ids select from the whole catalog full (sel is the
// result of Select).
func NewSelection(name string, full, sel *catalog.Catalog, groups, ids []string) *report.Selection {
	s := &report.Selection{Catalog: name, Groups: Dedup(groups), IDs: Dedup(ids), CatalogIDs: len(full.IDs())}
	want := map[string]bool{}
	for _, id := range s.IDs {
		want[id] = true
	}
	for _, sc := range sel.Scenarios {
		s.Scenarios = append(s.Scenarios, sc.Metadata.Group)
		n := 0
		for _, st := range sc.Spec.Steps {
			for _, e := range st.Expect {
				n++
				if len(want) == 0 || want[e.ID] {
					s.SelectedIDs = append(s.SelectedIDs, e.ID)
				}
			}
		}
		if n == 0 {
			s.EmptyScenarios = append(s.EmptyScenarios, sc.Metadata.Group)
		}
	}
	for _, sc := range full.Scenarios {
		empty := true
		for _, st := range sc.Spec.Steps {
			if len(st.Expect) > 0 {
				empty = false
			}
		}
		if empty && !contains(s.EmptyScenarios, sc.Metadata.Group) {
			s.EmptyScenarios = append(s.EmptyScenarios, sc.Metadata.Group)
		}
	}
	s.Full = len(s.SelectedIDs) > 0 && len(s.SelectedIDs) == s.CatalogIDs && len(s.EmptyScenarios) == 0
	return s
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// GinkgoOutputFile, in the report directory, holds Ginkgo's console output (unless
// Options.GinkgoVerbose streams it), with its report of an interrupt.
const GinkgoOutputFile = "ginkgo-output.txt"

// abbreviate lists the first n of ids and how many more there are.
func abbreviate(ids []string, n int) string {
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:n], ", "), len(ids)-n)
}

// failT adapts Ginkgo's testing interface outside `go test`.
type failT struct{ failed bool }

func (f *failT) Fail() { f.failed = true }

// Run runs the catalog through Ginkgo against the backend and writes every report. It returns the
// run and the report directory. t is the testing.T of a Go test, or nil from a command.
func Run(t ginkgo.GinkgoTestingT, o Options) (*report.Run, string, error) {
	if o.Backend == nil {
		return nil, "", fmt.Errorf("no backend")
	}
	info := o.Backend.Info()
	if info.Oracle == backend.OracleFake {
		return nil, "", fmt.Errorf("backend %s is a unit-test fake and cannot produce results", info.Name)
	}
	if err := o.Timeouts.Validate(); err != nil && o.Timeouts != (runner.Timeouts{}) {
		return nil, "", err
	}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	full := o.Catalog
	if full == nil {
		var err error
		if full, err = suites.Builtin(); err != nil {
			return nil, "", err
		}
		if o.CatalogName == "" {
			o.CatalogName = "built-in"
		}
	}
	if o.CatalogName == "" {
		o.CatalogName = "custom"
	}
	o.Groups, o.IDs = Dedup(o.Groups), Dedup(o.IDs)
	c, err := Select(full, o.Groups, o.IDs)
	if err != nil {
		return nil, "", err
	}
	selection := NewSelection(o.CatalogName, full, c, o.Groups, o.IDs)
	if o.Offline != nil {
		if info.Oracle == backend.OracleOffline {
			return nil, "", fmt.Errorf("--offline-from %s: this run is itself an offline run (backend %s)", o.OfflineFile, info.Name)
		}
		if err := report.CheckOffline(o.Offline, o.OfflineFile, o.CatalogName, selection.SelectedIDs); err != nil {
			return nil, "", err
		}
	}
	if o.ReportsDir == "" {
		o.ReportsDir = "reports"
	}
	started := time.Now()
	if o.RunID == "" {
		o.RunID = started.UTC().Format("20060102-150405") + "-" + info.Name
	}
	if err := ValidateRunID(o.RunID); err != nil {
		return nil, "", err
	}
	dir := filepath.Join(o.ReportsDir, o.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if o.Timeouts == (runner.Timeouts{}) {
		o.Timeouts = runner.DefaultTimeouts()
	}
	selected := map[string]bool{}
	for _, id := range selection.SelectedIDs {
		selected[id] = true
	}
	r := runner.New(runner.Options{Backend: o.Backend, Timeouts: o.Timeouts, Progress: o.Progress, ReportDir: dir, Transform: o.Transform, OnResult: o.OnResult,
		Selected: func(id string) bool { return selected[id] }, SerialChecks: o.SerialChecks})

	suites.Define(ctx, c, r)
	var suiteReport ginkgo.Report
	ginkgo.ReportAfterSuite("egressconf reports", func(rep ginkgo.Report) { suiteReport = rep })
	suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
	if len(o.IDs) > 0 {
		// Each ID is its own It whose text starts with the ID.
		suiteConfig.FocusStrings = nil
		for _, id := range o.IDs {
			suiteConfig.FocusStrings = append(suiteConfig.FocusStrings, `\b`+regexp.QuoteMeta(id)+`\b`)
		}
	}
	suiteConfig.Timeout = 24 * time.Hour
	reporterConfig.Succinct = !o.GinkgoVerbose
	reporterConfig.Verbose = o.GinkgoVerbose
	// The runner prints a line per step and expectation; Ginkgo's dots must not run into them.
	reporterConfig.ForceNewlines = true
	reporterConfig.SilenceSkips = true
	if st, err := os.Stdout.Stat(); err == nil && st.Mode()&os.ModeCharDevice == 0 {
		reporterConfig.NoColor = true
	}
	if t == nil {
		t = &failT{}
		gomega.RegisterFailHandler(ginkgo.Fail)
	}
	// RunSpecs always installs Ginkgo's own SIGINT/SIGTERM handler, whose report of an interrupt
	// holds every goroutine's stack (about 1000 lines). The runner already prints every step and
	// result, so unless GinkgoVerbose, Ginkgo's console output goes to a file of the run, where
	// that report stays available for debugging a hang.
	console := formatter.ColorableStdOut
	if !o.GinkgoVerbose {
		f, err := os.Create(filepath.Join(dir, GinkgoOutputFile))
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		formatter.ColorableStdOut = f
		reporterConfig.NoColor = true
	}
	// One line says what an interrupt stops and that cleanup follows (the teardowns and the
	// reports take a moment on a live cluster).
	stopNote := func() bool { return false }
	if o.Progress != nil {
		stopNote = context.AfterFunc(ctx, func() {
			what := "the run"
			if sp := ginkgo.CurrentSpecReport(); sp.LeafNodeType == types.NodeTypeIt && sp.LeafNodeText != "" {
				what, _, _ = strings.Cut(sp.LeafNodeText, " ")
			}
			fmt.Fprintf(o.Progress, "egressconf: interrupted: stopping %s, cleaning up run %s (teardowns, then the reports)\n", what, o.RunID)
		})
	}
	ginkgo.RunSpecs(t, "egressconf "+o.RunID, suiteConfig, reporterConfig)
	stopNote()
	formatter.ColorableStdOut = console

	interrupted := ctx.Err() != nil
	for _, why := range suiteReport.SpecialSuiteFailureReasons {
		if strings.Contains(strings.ToLower(why), "interrupt") {
			interrupted = true
		}
	}
	// Every selected ID ends with exactly one result: one that did not record any (interrupted,
	// or its spec ended in Ginkgo before the runner recorded it) is an error saying why.
	specFailure := map[string]string{}
	for _, sp := range suiteReport.SpecReports {
		if sp.LeafNodeType != types.NodeTypeIt || sp.State.Is(types.SpecStatePassed|types.SpecStateSkipped|types.SpecStatePending) {
			continue
		}
		id, _, _ := strings.Cut(sp.LeafNodeText, " ")
		msg := sp.State.String()
		if sp.Failure.Message != "" {
			msg += ": " + sp.Failure.Message
		}
		if sp.Failure.ForwardedPanic != "" {
			msg += ": panic: " + sp.Failure.ForwardedPanic
		}
		specFailure[id] = msg
	}
	recorded := map[string]bool{}
	for _, res := range r.Results() {
		recorded[res.ID] = true
	}
	want := map[string]bool{}
	for _, id := range selection.SelectedIDs {
		want[id] = true
	}
	var notReached []string
	for _, sc := range c.Scenarios {
		for si := range sc.Spec.Steps {
			st := &sc.Spec.Steps[si]
			for ei := range st.Expect {
				e := &st.Expect[ei]
				if !want[e.ID] || recorded[e.ID] {
					continue
				}
				why := "its spec ended without a result"
				switch {
				case specFailure[e.ID] != "":
					why = "its spec ended without a result: " + specFailure[e.ID]
				case interrupted:
					// One line for all of them: an interrupt early in a run leaves dozens.
					r.RecordNotRun(sc, st, e, "the run was interrupted before it")
					notReached = append(notReached, e.ID)
					continue
				}
				r.NotRun(sc, st, e, why)
			}
		}
	}
	if len(notReached) > 0 && o.Progress != nil {
		fmt.Fprintf(o.Progress, "   NOT RUN %d expectations: the run was interrupted before them (%s)\n", len(notReached), abbreviate(notReached, 6))
	}

	// Ginkgo shuffles top-level containers; reports follow the catalog's order.
	order := map[string]int{}
	for i, id := range c.IDs() {
		order[id] = i
	}
	results := append([]report.Result(nil), r.Results()...)
	sort.SliceStable(results, func(i, j int) bool { return order[results[i].ID] < order[results[j].ID] })
	run := &report.Run{
		ID: o.RunID, Started: started, Finished: time.Now(), Backend: info,
		Implementation: o.Implementation, Results: results,
		Interrupted: interrupted, Selection: selection, Settings: o.Timeouts.Settings(),
		TeardownFailures: r.TeardownFailures(),
		Adaptations:      r.Adaptations(),
	}
	run.Backend = o.Backend.Info() // the proxies' versions are read during the run
	tm := r.Timing()
	run.Timing = &report.Timing{Groups: r.GroupTimings()}
	run.Measurements = append(run.Measurements,
		report.Measurement{Name: "wall time", Value: run.Finished.Sub(started).Round(time.Millisecond).String()},
		report.Measurement{Name: "time waiting for convergence", Value: tm.Converge.Round(time.Millisecond).String()},
		report.Measurement{Name: "time in probes", Value: tm.Probes.Round(time.Millisecond).String()},
		report.Measurement{Name: "time holding negative expectations", Value: tm.Holds.Round(time.Millisecond).String()},
		report.Measurement{Name: "time reading access logs", Value: tm.Logs.Round(time.Millisecond).String()})
	if p, ok := o.Backend.(backend.Predictor); ok && p.PredictionOracle() != "" {
		run.Predictions = append(run.Predictions, report.PredictionSource{Oracle: p.PredictionOracle(), Backend: run.Backend.Name, IstioVersion: run.Backend.IstioVersion})
	}
	var joinErr error
	if o.Offline != nil {
		// On an error nothing is joined; the reports are written all the same.
		joinErr = report.JoinOffline(run, o.Offline, o.OfflineFile)
	}
	if o.Measure != nil {
		o.Measure(run)
	}
	if _, err := report.WriteAll(dir, run); err != nil {
		return run, dir, err
	}
	return run, dir, joinErr
}
