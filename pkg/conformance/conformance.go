// Package conformance is the thin entry point that runs a catalog against a backend through the
// Ginkgo suite and writes the reports. The CLI calls it; a vendor can call it from a Go test.
package conformance

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
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
	// GinkgoVerbose streams Ginkgo's spec-by-spec output.
	GinkgoVerbose bool
}

// Select returns the catalog limited to the given groups, erroring on an unknown one, and checks
// that every requested ID exists.
func Select(c *catalog.Catalog, groups, ids []string) (*catalog.Catalog, error) {
	out := c
	if len(groups) > 0 {
		out = &catalog.Catalog{}
		for _, g := range groups {
			s, err := c.Group(g)
			if err != nil {
				return nil, err
			}
			out.Scenarios = append(out.Scenarios, s)
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
	c := o.Catalog
	if c == nil {
		var err error
		if c, err = suites.Builtin(); err != nil {
			return nil, "", err
		}
	}
	c, err := Select(c, o.Groups, o.IDs)
	if err != nil {
		return nil, "", err
	}
	if o.ReportsDir == "" {
		o.ReportsDir = "reports"
	}
	started := time.Now()
	if o.RunID == "" {
		o.RunID = started.UTC().Format("20060102-150405") + "-" + info.Name
	}
	dir := filepath.Join(o.ReportsDir, o.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if o.Timeouts == (runner.Timeouts{}) {
		o.Timeouts = runner.DefaultTimeouts()
	}
	r := runner.New(runner.Options{Backend: o.Backend, Timeouts: o.Timeouts, Progress: o.Progress, ReportDir: dir, Transform: o.Transform})

	suites.Define(c, r)
	suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
	if len(o.IDs) > 0 {
		// Each ID is its own It whose text starts with the ID.
		suiteConfig.FocusStrings = nil
		for _, id := range o.IDs {
			suiteConfig.FocusStrings = append(suiteConfig.FocusStrings, "\\b"+id+"\\b")
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
	ginkgo.RunSpecs(t, "egressconf "+o.RunID, suiteConfig, reporterConfig)

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
	}
	run.Measurements = append(run.Measurements, report.Measurement{Name: "wall time", Value: run.Finished.Sub(started).Round(time.Millisecond).String()})
	if o.Measure != nil {
		o.Measure(run)
	}
	if _, err := report.WriteAll(dir, run); err != nil {
		return run, dir, err
	}
	return run, dir, nil
}
