package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
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

	c, err := loadCatalog(dirs)
	if err != nil {
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid, nothing was run:\n%w", err)
	}
	var b backend.Backend
	switch *backendName {
	case "sim":
		profile, _, err := resolveProfile(lf.istioProfile, nil)
		if err != nil {
			return err
		}
		b = sim.New(sim.WithProfile(profile))
	case "kind", "existing":
		// SIGINT/SIGTERM: provisioning stops; during the suite Ginkgo interrupts the running spec
		// and tears its scenario down; finish then cleans the run up and runs the leak check.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
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
		Implementation: impl, Progress: os.Stdout, GinkgoVerbose: *verbose,
		Transform: adapt.New(adapt.Options{TranslateASM: !info.Capabilities[backend.CapASMEgressTrafficPolicy], HermeticTrust: lf.internet != live.InternetLive}),
		Measure: func(run *report.Run) {
			run.Measurements = append(run.Measurements, report.Measurement{Name: "peak memory (RSS) of egressconf", Value: fmt.Sprintf("%.0f MiB", float64(procstat.PeakRSS())/(1<<20))})
		},
	})
	if err != nil {
		return err
	}
	cnt := run.Counts()
	fmt.Printf("\n%d passed, %d failed, %d errors, %d skipped -- reports in %s\n", cnt.Passed, cnt.Failed, cnt.Errored, cnt.Skipped, dir)
	if !run.OK() {
		return exitError{1}
	}
	return nil
}
