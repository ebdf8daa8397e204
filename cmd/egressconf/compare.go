package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/egressconf/egressconf/pkg/report"
)

func newCompareCmd() *cobra.Command {
	var htmlOut string
	c := &cobra.Command{
		Use:   "compare [--html FILE] RUN_A [RUN_B ...]",
		Short: "per-ID differences of two or more runs (results.json files or run directories), or of one run with predictions, each classified",
		Args:  cobra.ArbitraryArgs,
		RunE:  func(_ *cobra.Command, pos []string) error { return compare(pos, htmlOut) },
	}
	c.Flags().StringVar(&htmlOut, "html", "", "also write the differential as a self-contained HTML report to this `file`")
	return c
}

// compare holds runs against each other per expectation ID: the offline prediction, the live
// control plane's and the live observation, say. Any difference in verdict or observation is
// listed with its class (report.Differential: documentation drift, data-plane divergence, ...);
// exit 1 if any difference. htmlOut, if set, gets the differential as one self-contained page.
func compare(pos []string, htmlOut string) error {
	if len(pos) == 0 {
		return usageError{"compare needs two or more results.json files (or run directories), or one run with predictions (--probe curl,xds, --offline-from)"}
	}
	if len(pos) == 1 {
		// One run is enough when it holds two oracles or more: its observation and predictions.
		r, _, err := report.ReadRun(pos[0])
		if err != nil || len(report.OracleViews(r)) < 2 {
			why := "it holds one oracle"
			if err != nil {
				why = err.Error()
			}
			return usageError{fmt.Sprintf("compare needs two or more results.json files (or run directories), or one run with predictions (--probe curl,xds, --offline-from): %s: %s", pos[0], why)}
		}
	}
	runs := make([]*report.Run, len(pos))
	for i, p := range pos {
		r, _, err := report.ReadRun(p)
		if err != nil {
			return err
		}
		runs[i] = r
	}
	for i, r := range runs {
		if len(r.Results) == 0 {
			return fmt.Errorf("%s (run %q) has no results: there is nothing to compare", pos[i], r.ID)
		}
	}
	d := report.NewDifferential(runs...)
	runs = d.Runs // one per oracle: a --probe curl,xds run is two
	diffs, uncompared := 0, 0
	first := 0 // IDs of the first run: "compared" counts them, as it always has
	for _, row := range d.Rows {
		if row.Results[0] != nil {
			first++
		}
		switch {
		case row.Differs && hasMissing(row):
			printMissing(runs, row)
			diffs++
		case row.NotCompared && !row.Differs:
			printNotCompared(runs, row)
			if row.Results[0] != nil {
				uncompared++
			}
		case row.Differs:
			var parts []string
			for i, r := range row.Results {
				parts = append(parts, fmt.Sprintf("%s (%s): %s %q", runs[i].Backend.Name, runs[i].Backend.Oracle, r.Verdict, r.Observed))
			}
			fmt.Printf("%-12s %s\n", row.ID, strings.Join(parts, " | "))
			diffs++
		}
		printClasses(row)
	}
	var oracles []string
	for _, r := range d.Runs {
		oracles = append(oracles, fmt.Sprintf("%s: %s", r.ID, r.Backend.Oracle))
	}
	fmt.Printf("%d expectations compared, %d differ, %d not compared for a capability one side lacks (%s)\n", first-uncompared, diffs, uncompared, strings.Join(oracles, "; "))
	if counts := d.ClassCounts(); len(counts) > 0 {
		var parts []string
		for _, c := range report.Classes {
			if counts[c] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", c.Title(), counts[c]))
			}
		}
		fmt.Printf("classes: %s\n", strings.Join(parts, ", "))
	}
	if htmlOut != "" {
		if err := writeHTMLFile(htmlOut, d); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", htmlOut)
	}
	if diffs > 0 {
		return exitError{1}
	}
	return nil
}

func hasMissing(row report.DiffRow) bool {
	for _, r := range row.Results {
		if r == nil {
			return true
		}
	}
	return false
}

// printMissing says which runs have the ID: "only in A" for two runs.
func printMissing(runs []*report.Run, row report.DiffRow) {
	var in, out []string
	for i, r := range row.Results {
		if r == nil {
			out = append(out, runs[i].ID)
		} else {
			in = append(in, runs[i].ID)
		}
	}
	if len(runs) == 2 {
		fmt.Printf("%-12s only in %s\n", row.ID, in[0])
		return
	}
	fmt.Printf("%-12s missing from %s (present in %s)\n", row.ID, strings.Join(out, ", "), strings.Join(in, ", "))
}

// printNotCompared: one run skipped the ID for a capability it lacks (the offline model has no
// NetworkPolicy; a cluster with an enforcer does): a prediction that did not run neither agrees
// nor differs. Listed, not counted as agreement.
func printNotCompared(runs []*report.Run, row report.DiffRow) {
	var skipped, ran []string
	capability := ""
	for i, r := range row.Results {
		switch {
		case r == nil:
		case r.Verdict == report.Skip && r.Capability != "":
			skipped = append(skipped, runs[i].ID)
			capability = r.Capability
		default:
			ran = append(ran, fmt.Sprintf("%s: %s %q", runs[i].ID, r.Verdict, r.Observed))
		}
	}
	fmt.Printf("%-12s not compared: %s skipped it (no capability %q); %s\n", row.ID, strings.Join(skipped, ", "), capability, strings.Join(ran, "; "))
}

// printClasses writes the row's classes under its line (documentation drift has no line of its
// own: every run agrees, and all fail).
func printClasses(row report.DiffRow) {
	if len(row.Classes) == 0 || (len(row.Classes) == 1 && row.Classes[0] == report.ClassNotCompared) {
		return
	}
	if !row.Differs && !row.NotCompared {
		fmt.Printf("%-12s agree, and fail\n", row.ID)
	}
	for _, why := range row.Reasons {
		fmt.Printf("%-12s   %s\n", "", why)
	}
}

// writeHTMLFile writes the differential page; errors name the file.
func writeHTMLFile(path string, d *report.Differential) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = report.WriteHTML(f, d)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
