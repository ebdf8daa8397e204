package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/egressconf/egressconf/pkg/report"
)

func newTimingCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "timing RUN [RUN ...]",
		Short: "where each run's wall time went (provisioning phases, then each group's setup, convergence, probes, holds, teardown), a column per run",
		Long: `timing prints the breakdown a run records in its results.json: the provisioning phases (cluster
create, image loads, Istio install, stand-in and DNS), the groups' setup, step actions, convergence,
probes, holding windows, access-log reads and teardown, the median apply-to-converged time of the
steps, and each group's wall time. Give run directories or results.json files; each is a column
(make bench-live prints a fresh and a reused cluster's run this way).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			runs := make([]*report.Run, len(pos))
			for i, p := range pos {
				run, _, err := report.ReadRun(p)
				if err != nil {
					return err
				}
				if run.Timing == nil {
					return fmt.Errorf("%s (run %q) records no timing: it was written by an egressconf before the timing breakdown", p, run.ID)
				}
				runs[i] = run
			}
			report.WriteTimings(os.Stdout, runs)
			return nil
		},
	}
}
