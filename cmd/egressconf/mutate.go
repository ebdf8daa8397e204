package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/mutate"
)

// mutateFlags are the flags of `egressconf mutate`.
type mutateFlags struct {
	backend string
	groups  stringList
	dirs    stringList
	reports string
	runID   string
	verbose bool
}

// register defines the command's flags on fs.
func (f *mutateFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.backend, "backend", "sim", "where the runs happen: sim only (the check re-runs every group once per change)")
	fs.Var(&f.groups, "group", "check only these groups (repeatable; G1 or deny-namespace)")
	fs.Var(&f.dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	fs.StringVar(&f.reports, "reports", "reports", "directory for reports/<run>/")
	fs.StringVar(&f.runID, "run-id", "", "name of the run (default: time and \"mutate\")")
	fs.BoolVarP(&f.verbose, "v", "v", false, "print a line per mutation run")
}

// check refuses positional arguments and flag values the command cannot use.
func (f *mutateFlags) check(pos []string) error {
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("mutate takes no arguments, got %v", pos)}
	}
	if f.backend != "sim" {
		return usageError{fmt.Sprintf("--backend %q: the mutation check runs on the offline backend only (sim)", f.backend)}
	}
	if f.runID != "" {
		if err := conformance.ValidateRunID(f.runID); err != nil {
			return usageError{err.Error()}
		}
	}
	return nil
}

func newMutateCmd() *cobra.Command {
	f := &mutateFlags{}
	c := &cobra.Command{
		Use:   "mutate [--catalog DIR]... [--group G]...",
		Short: "leave out each change, check that verdicts flip (offline)",
		Args:  func(_ *cobra.Command, pos []string) error { return f.check(pos) },
		RunE:  func(*cobra.Command, []string) error { return mutateCmd(*f) },
	}
	f.register(c.Flags())
	return c
}

func mutateCmd(f mutateFlags) error {
	c, err := loadCatalog(f.dirs)
	if err != nil {
		if len(f.dirs) > 0 {
			return fmt.Errorf("--catalog: %w", err)
		}
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid, nothing was run:\n%w", err)
	}
	if c, err = conformance.Select(c, f.groups, nil); err != nil {
		return usageError{err.Error()}
	}
	name := "built-in"
	if len(f.dirs) > 0 {
		name = strings.Join(f.dirs, ", ")
	}
	if f.runID == "" {
		f.runID = time.Now().UTC().Format("20060102-150405") + "-mutate"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := sim.New()
	info := b.Info()
	fmt.Printf("egressconf: mutation check on backend %s: %s\n", info.Name, info.Oracle.Claim())
	o := mutate.Options{
		Backend: b, Catalog: name,
		// As `run --backend sim` does: ASM policies translated, the stand-in hosts' trust.
		Transform: adapt.New(adapt.Options{TranslateASM: !info.Capabilities[backend.CapASMEgressTrafficPolicy], HermeticTrust: true}),
	}
	if f.verbose {
		o.Progress = os.Stdout
	}
	res, err := mutate.Check(ctx, c, o)
	if err != nil {
		return err
	}
	files, err := mutate.Write(filepath.Join(f.reports, f.runID), res)
	if err != nil {
		return err
	}
	for _, g := range res.Groups {
		fmt.Printf("%-4s %-28s %3d mutations %3d runs %s\n", g.Group, g.Name, len(g.Mutations), g.Runs, g.Duration.Round(time.Millisecond))
	}
	fmt.Printf("reports: %s\n", strings.Join(files, ", "))
	fmt.Println(res.Verdict())
	if !res.OK() {
		return exitError{1}
	}
	return nil
}
