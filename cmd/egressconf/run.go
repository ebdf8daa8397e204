package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/egressconf/egressconf/internal/procstat"
	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/backend/live"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

func cmdRun(args []string) (retErr error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	backendName := fs.String("backend", "sim", "where to run: sim (Istio's control plane in process), kind, existing")
	var groups, ids, dirs stringList
	fs.Var(&groups, "group", "run only these groups (repeatable; G1 or deny-namespace)")
	fs.Var(&ids, "id", "run only these expectation IDs (repeatable)")
	fs.Var(&dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	reports := fs.String("reports", "reports", "directory for reports/<run>/")
	runID := fs.String("run-id", "", "name of the run (default: time and backend)")
	var impl report.Implementation
	fs.StringVar(&impl.Organization, "organization", "", "implementation: organization (conformance report)")
	fs.StringVar(&impl.Project, "project", "", "implementation: project")
	fs.StringVar(&impl.URL, "url", "", "implementation: URL")
	fs.StringVar(&impl.Version, "version", "", "implementation: version")
	var contact stringList
	fs.Var(&contact, "contact", "implementation: contact (repeatable)")
	verbose := fs.Bool("v", false, "stream Ginkgo's spec-by-spec output")
	timeouts := runner.DefaultTimeouts()
	timeouts.AddFlags(fs)
	lf := addLiveFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return usageError{err.Error()}
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("run takes no arguments, got %v", pos)}
	}
	impl.Contact = contact
	if err := timeouts.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if *runID != "" {
		if err := conformance.ValidateRunID(*runID); err != nil {
			return usageError{err.Error()}
		}
	}
	if *backendName == "sim" {
		if set := liveOnlyFlagsSet(fs); len(set) > 0 {
			return usageError{fmt.Sprintf("--backend sim: %s only applies to a live backend (kind, existing)", strings.Join(set, ", "))}
		}
	}

	c, err := loadCatalog(dirs)
	if err != nil {
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid, nothing was run:\n%w", err)
	}
	catalogName := "built-in"
	if len(dirs) > 0 {
		catalogName = strings.Join(dirs, ", ")
	}
	// SIGINT/SIGTERM on every backend: the running expectation is interrupted, every later one is
	// reported as not run, teardowns run, the reports say interrupted and the exit code is 130. On
	// a live backend provisioning stops too, and finish cleans the run up and runs the leak check.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Where the reports are is the last line of stdout, after a live backend's cleanup too
	// (deferred before it, so it runs after it); only once a run has written them.
	var reportsDir string
	defer func() {
		if reportsDir != "" {
			fmt.Printf("reports: %s\n", reportsDir)
		}
	}()
	var b backend.Backend
	switch *backendName {
	case "sim":
		profile, _, err := resolveProfile(lf.istioProfile, nil)
		if err != nil {
			return err
		}
		b = sim.New(sim.WithProfile(profile))
	case "kind", "existing":
		if *runID == "" {
			*runID = time.Now().UTC().Format("20060102-150405") + "-" + *backendName
		}
		lf.backendName, lf.runID, lf.timeouts, lf.catalog, lf.progress = *backendName, *runID, timeouts, c, os.Stdout
		lb, finish, err := startLive(ctx, lf)
		defer func() {
			if ferr := finish(); ferr != nil {
				fmt.Fprintf(os.Stderr, "egressconf: cleanup: %v\n", ferr)
				if retErr == nil {
					retErr = exitError{1}
				}
			}
			if ctx.Err() != nil && retErr == nil {
				fmt.Fprintln(os.Stderr, "egressconf: interrupted")
				retErr = exitError{130}
			}
		}()
		if err != nil {
			return err
		}
		b = lb
	default:
		return usageError{fmt.Sprintf("unknown backend %q (sim, kind, existing)", *backendName)}
	}
	info := b.Info()
	fmt.Printf("egressconf: backend %s: %s\n", info.Name, info.Oracle.Claim())
	run, dir, err := conformance.Run(nil, conformance.Options{
		Backend: b, Catalog: c, Groups: groups, IDs: ids, Timeouts: timeouts, ReportsDir: *reports, RunID: *runID,
		Implementation: impl, Progress: os.Stdout, GinkgoVerbose: *verbose, Context: ctx, CatalogName: catalogName,
		Transform: adapt.New(adapt.Options{TranslateASM: !info.Capabilities[backend.CapASMEgressTrafficPolicy], HermeticTrust: lf.internet != live.InternetLive}),
		Measure: func(run *report.Run) {
			run.Measurements = append(run.Measurements, report.Measurement{Name: "peak memory (RSS) of egressconf", Value: fmt.Sprintf("%.0f MiB", float64(procstat.PeakRSS())/(1<<20))})
		},
	})
	if err != nil {
		return err
	}
	reportsDir = dir
	cnt := run.Counts()
	d := report.Decide(run)
	fmt.Println()
	for _, m := range run.Measurements {
		fmt.Printf("%s: %s\n", m.Name, m.Value)
	}
	fmt.Printf("\n%s: %d passed, %d failed, %d errors, %d skipped -- reports in %s\n", d.Word, cnt.Passed, cnt.Failed, cnt.Errored, cnt.Skipped, dir)
	for _, why := range d.Reasons {
		fmt.Printf("  %s\n", why)
	}
	if run.Interrupted {
		fmt.Fprintln(os.Stderr, "egressconf: interrupted")
	}
	if d.ExitCode != 0 {
		return exitError{d.ExitCode}
	}
	return nil
}

// liveOnlyFlagsSet names the live-backend flags given on the command line.
func liveOnlyFlagsSet(fs *flag.FlagSet) []string {
	live := flag.NewFlagSet("live", flag.ContinueOnError)
	addLiveFlags(live)
	var set []string
	fs.Visit(func(f *flag.Flag) {
		// --istio-profile also sets the istiod settings of the offline control plane.
		if (live.Lookup(f.Name) != nil && f.Name != "istio-profile") || f.Name == "timeout-provision" {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}
