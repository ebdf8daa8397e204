package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

// runFlags are the flags of `egressconf run`.
type runFlags struct {
	backend           string
	groups, ids, dirs stringList
	reports, runID    string
	offlineFrom       string
	impl              report.Implementation
	contact           stringList
	verbose           bool
	serialChecks      bool
	timeouts          runner.Timeouts
	live              *liveFlags
}

func newRunCmd() *cobra.Command {
	f := &runFlags{timeouts: runner.DefaultTimeouts()}
	c := &cobra.Command{
		Use:   "run --backend sim|kind|existing [flags]",
		Short: "run the suite and write reports/<run>/",
		Long: `Run runs the catalog (or --group/--id of it) on a backend and writes JUnit, a Markdown
summary, results.json and a conformance report to --reports/<run>/.

  --backend sim       Istio's control plane in process: predictions, no cluster
  --backend kind      a kind cluster with Istio: observations through Envoy
  --backend existing  your cluster (--kubeconfig/--context): observations

The flags marked kind: or existing: and the other live-backend flags (docs/live.md) are refused
with --backend sim.`,
		Example: `  egressconf run --backend sim --group G1,G2
  egressconf run --backend kind --id DENYNS-03 -v
  egressconf run --backend existing --context my-cluster --load-command "./load.sh {}"`,
		Args: func(_ *cobra.Command, pos []string) error {
			if len(pos) > 0 {
				return usageError{fmt.Sprintf("run takes no arguments, got %v", pos)}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return runRun(c.Flags(), f) },
	}
	fs := c.Flags()
	fs.StringVar(&f.backend, "backend", "sim", "where to run: sim (Istio's control plane in process), kind, existing")
	fs.Var(&f.groups, "group", "run only these groups (repeatable; G1 or deny-namespace)")
	fs.Var(&f.ids, "id", "run only these expectation IDs (repeatable)")
	fs.Var(&f.dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	fs.StringVar(&f.reports, "reports", "reports", "directory for reports/<run>/")
	fs.StringVar(&f.runID, "run-id", "", "name of the run (default: time and backend)")
	fs.StringVar(&f.offlineFrom, "offline-from", "", "live backends: join this --backend sim run of the same catalog (its directory or results.json) into the reports as each ID's offline prediction; checked before anything runs")
	fs.StringVar(&f.impl.Organization, "organization", "", "implementation: organization (conformance report)")
	fs.StringVar(&f.impl.Project, "project", "", "implementation: project")
	fs.StringVar(&f.impl.URL, "url", "", "implementation: URL")
	fs.StringVar(&f.impl.Version, "version", "", "implementation: version")
	fs.Var(&f.contact, "contact", "implementation: contact (repeatable)")
	// -v and --v, as with the standard flag package before.
	fs.BoolVarP(&f.verbose, "v", "v", false, "stream Ginkgo's spec-by-spec output")
	fs.BoolVar(&f.serialChecks, "serial-checks", false, "run each step's checks one after another (default on a live mesh: every probe check of a step starts when the step converged, so their holding windows overlap)")
	// The timeouts' flags are defined once, in pkg/runner, on a standard FlagSet (its reports read
	// the settings back through it); pflag takes them over as they are.
	gfs := flag.NewFlagSet("timeouts", flag.ContinueOnError)
	f.timeouts.AddFlags(gfs)
	fs.AddGoFlagSet(gfs)
	f.live = addLiveFlags(fs)
	for name, values := range map[string][]string{
		"backend": {"sim", "kind", "existing"}, "probe": {live.ProbeCurl, live.ProbeXDS, live.ProbeBoth},
		"internet": {live.InternetHermetic, live.InternetLive}, "network-policy": {"auto", "yes", "no"},
		"istio-profile": {"auto", "istio", "upstream-envoy"},
	} {
		c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	return c
}

func runRun(fs *pflag.FlagSet, f *runFlags) (retErr error) {
	began := time.Now()
	impl, timeouts, lf := f.impl, f.timeouts, f.live
	impl.Contact = f.contact
	if err := timeouts.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if f.runID != "" {
		if err := conformance.ValidateRunID(f.runID); err != nil {
			return usageError{err.Error()}
		}
	}
	if f.backend == "sim" {
		if set := liveOnlyFlagsSet(fs); len(set) > 0 {
			return usageError{fmt.Sprintf("--backend sim: %s only applies to a live backend (kind, existing)", strings.Join(set, ", "))}
		}
	}

	c, err := loadCatalog(f.dirs)
	if err != nil {
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid, nothing was run:\n%w", err)
	}
	catalogName := "built-in"
	if len(f.dirs) > 0 {
		catalogName = strings.Join(f.dirs, ", ")
	}
	var offline *report.Run
	var offlineFile string
	if f.offlineFrom != "" {
		if f.backend == "sim" {
			return usageError{"--backend sim: --offline-from joins an offline run into a live run's reports; compare two sim runs with egressconf compare"}
		}
		// Read and checked before a cluster is created: a wrong run must not cost a live run.
		if offline, offlineFile, err = report.ReadRun(f.offlineFrom); err != nil {
			return fmt.Errorf("--offline-from: %w", err)
		}
		if err := conformance.CheckOffline(offline, offlineFile, catalogName, c, f.groups, f.ids); err != nil {
			return err
		}
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
	// The provisioning phases' durations, for the report's timing breakdown (make bench-live).
	phases := &report.PhaseLog{W: os.Stdout}
	var b backend.Backend
	switch f.backend {
	case "sim":
		profile, _, err := resolveProfile(lf.istioProfile, nil)
		if err != nil {
			return err
		}
		b = sim.New(sim.WithProfile(profile))
	case "kind", "existing":
		if f.runID == "" {
			f.runID = time.Now().UTC().Format("20060102-150405") + "-" + f.backend
		}
		lf.backendName, lf.runID, lf.timeouts, lf.catalog, lf.progress = f.backend, f.runID, timeouts, c, phases
		lf.gateways = selectedGateways(c, f.groups, f.ids)
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
		return usageError{fmt.Sprintf("unknown backend %q (sim, kind, existing)", f.backend)}
	}
	info := b.Info()
	fmt.Printf("egressconf: backend %s: %s\n", info.Name, info.Oracle.Claim())
	run, dir, err := conformance.Run(nil, conformance.Options{
		Backend: b, Catalog: c, Groups: f.groups, IDs: f.ids, Timeouts: timeouts, ReportsDir: f.reports, RunID: f.runID,
		Implementation: impl, Progress: os.Stdout, GinkgoVerbose: f.verbose, SerialChecks: f.serialChecks, Context: ctx, CatalogName: catalogName,
		Transform: adapt.New(adapt.Options{TranslateASM: !info.Capabilities[backend.CapASMEgressTrafficPolicy], HermeticTrust: lf.internet != live.InternetLive}),
		Offline:   offline, OfflineFile: offlineFile,
		Measure: func(run *report.Run) {
			if run.Timing != nil {
				run.Timing.Phases = phases.Phases()
				run.Timing.Wall = time.Since(began)
			}
			run.Measurements = append(run.Measurements, report.Measurement{Name: "peak memory (RSS) of egressconf", Value: fmt.Sprintf("%.0f MiB", float64(procstat.PeakRSS())/(1<<20))})
		},
	})
	if err != nil && run == nil {
		return err
	}
	reportsDir = dir
	if err != nil {
		// The reports were written (without the join): say where, and fail.
		return err
	}
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
	for _, line := range report.PredictionTally(run) {
		fmt.Printf("%s\n", line)
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
func liveOnlyFlagsSet(fs *pflag.FlagSet) []string {
	live := pflag.NewFlagSet("live", pflag.ContinueOnError)
	addLiveFlags(live)
	var set []string
	fs.Visit(func(f *pflag.Flag) {
		// --istio-profile also sets the istiod settings of the offline control plane.
		if (live.Lookup(f.Name) != nil && f.Name != "istio-profile") || f.Name == "timeout-provision" {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}

// selectedGateways are the egress gateways the selected scenarios use (nil when the selection is
// invalid: conformance.Run reports that; every gateway counts meanwhile).
func selectedGateways(c *catalog.Catalog, groups, ids []string) []string {
	sel, err := conformance.Select(c, groups, ids)
	if err != nil {
		return nil
	}
	out := []string{}
	for _, s := range sel.Scenarios {
		for _, g := range s.Spec.Gateways {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}
