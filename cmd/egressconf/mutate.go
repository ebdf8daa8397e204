package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

// parseMutateFlags is the whole flag parsing of the command, kept apart to be easy to port.
func parseMutateFlags(args []string) (mutateFlags, error) {
	var f mutateFlags
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.StringVar(&f.backend, "backend", "sim", "where the runs happen: sim only (the check re-runs every group once per change)")
	fs.Var(&f.groups, "group", "check only these groups (repeatable; G1 or deny-namespace)")
	fs.Var(&f.dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	fs.StringVar(&f.reports, "reports", "reports", "directory for reports/<run>/")
	fs.StringVar(&f.runID, "run-id", "", "name of the run (default: time and \"mutate\")")
	fs.BoolVar(&f.verbose, "v", false, "print a line per mutation run")
	pos, err := parse(fs, args)
	if err != nil {
		return f, usageError{err.Error()}
	}
	if len(pos) > 0 {
		return f, usageError{fmt.Sprintf("mutate takes no arguments, got %v", pos)}
	}
	if f.backend != "sim" {
		return f, usageError{fmt.Sprintf("--backend %q: the mutation check runs on the offline backend only (sim)", f.backend)}
	}
	if f.runID != "" {
		if err := conformance.ValidateRunID(f.runID); err != nil {
			return f, usageError{err.Error()}
		}
	}
	return f, nil
}

func cmdMutate(args []string) error {
	f, err := parseMutateFlags(args)
	if err != nil {
		return err
	}
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
