package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/egressconf/egressconf/pkg/report"
)

func newCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare RUN_A RUN_B",
		Short: "per-ID differences of two runs (results.json files or run directories)",
		Args:  cobra.ArbitraryArgs,
		RunE:  func(_ *cobra.Command, pos []string) error { return compare(pos) },
	}
}

// compare holds two runs against each other per expectation ID: the offline prediction and the
// live control plane's, say. Any difference in verdict or observation is listed; exit 1 if any.
func compare(pos []string) error {
	if len(pos) != 2 {
		return usageError{"compare needs two results.json files (or run directories)"}
	}
	var runs [2]*report.Run
	for i, p := range pos {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			p += "/" + report.ResultsFile
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		runs[i] = &report.Run{}
		if err := json.Unmarshal(data, runs[i]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for i, r := range runs {
		if len(r.Results) == 0 {
			return fmt.Errorf("%s (run %q) has no results: there is nothing to compare", pos[i], r.ID)
		}
	}
	a, b := runs[0], runs[1]
	byID := map[string]report.Result{}
	for _, r := range b.Results {
		byID[r.ID] = r
	}
	diffs, uncompared := 0, 0
	for _, ra := range a.Results {
		rb, ok := byID[ra.ID]
		switch {
		case !ok:
			fmt.Printf("%-12s only in %s\n", ra.ID, a.ID)
			diffs++
		case (ra.Verdict == report.Skip && ra.Capability != "") != (rb.Verdict == report.Skip && rb.Capability != ""):
			// One backend lacks a capability the expectation needs (the offline model has no
			// NetworkPolicy; a cluster with an enforcer does): a prediction that did not run
			// neither agrees nor differs. Listed, not counted as agreement.
			skipped, ran := a, b
			sr, rr := ra, rb
			if rb.Verdict == report.Skip {
				skipped, ran, sr, rr = b, a, rb, ra
			}
			fmt.Printf("%-12s not compared: %s skipped it (no capability %q); %s: %s %q\n", ra.ID, skipped.ID, sr.Capability, ran.ID, rr.Verdict, rr.Observed)
			uncompared++
		case ra.Verdict != rb.Verdict || ra.Observed != rb.Observed:
			fmt.Printf("%-12s %s (%s): %s %q | %s (%s): %s %q\n", ra.ID, a.Backend.Name, a.Backend.Oracle, ra.Verdict, ra.Observed,
				b.Backend.Name, b.Backend.Oracle, rb.Verdict, rb.Observed)
			diffs++
		}
		delete(byID, ra.ID)
	}
	for id := range byID {
		fmt.Printf("%-12s only in %s\n", id, b.ID)
		diffs++
	}
	fmt.Printf("%d expectations compared, %d differ, %d not compared for a capability one side lacks (%s: %s; %s: %s)\n", len(a.Results)-uncompared, diffs, uncompared, a.ID, a.Backend.Oracle, b.ID, b.Backend.Oracle)
	if diffs > 0 {
		return exitError{1}
	}
	return nil
}
