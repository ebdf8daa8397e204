package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteSummary writes the truth table a person reads at a glance (Markdown; it renders as a CI step
// summary too): ID, from, request, expected, observed, verdict, time.
func WriteSummary(w io.Writer, run *Run) error {
	c := run.Counts()
	d := Decide(run)
	var b strings.Builder
	fmt.Fprintf(&b, "# egressconf run %s\n\n", run.ID)
	fmt.Fprintf(&b, "**%s** — backend `%s`, %s.\n\n", d.Word, run.Backend.Name, run.Backend.Oracle.Claim())
	if run.Interrupted {
		notRun := 0
		for _, r := range run.Results {
			if r.NotRun {
				notRun++
			}
		}
		fmt.Fprintf(&b, "**The run was interrupted**: %d selected IDs did not run (listed as errors below).\n\n", notRun)
	}
	for _, why := range d.Reasons {
		fmt.Fprintf(&b, "- not a full pass: %s\n", why)
	}
	if len(d.Reasons) > 0 {
		b.WriteString("\n")
	}
	if s := run.Selection; s != nil {
		full := "the full catalog"
		if !s.Full {
			full = "a subset, not full conformance"
		}
		fmt.Fprintf(&b, "Selection: %s (%s).\n\n", s.Describe(), full)
	}
	fmt.Fprintf(&b, "| passed | failed | errors | skipped | total |\n|---|---|---|---|---|\n| %d | %d | %d | %d | %d |\n\n",
		c.Passed, c.Failed, c.Errored, c.Skipped, c.Total())
	if run.Backend.IstioVersion != "" {
		fmt.Fprintf(&b, "Istio control plane: %s", run.Backend.IstioVersion)
		if run.Backend.MeshVersion != "" {
			fmt.Fprintf(&b, "; mesh: %s", run.Backend.MeshVersion)
		}
		b.WriteString("\n\n")
	}
	if run.Backend.NetworkPolicy != "" {
		fmt.Fprintf(&b, "NetworkPolicy: %s\n\n", run.Backend.NetworkPolicy)
	}
	if run.Backend.ClusterDNS != "" {
		fmt.Fprintf(&b, "Cluster DNS: %s\n\n", run.Backend.ClusterDNS)
	}
	if len(run.Settings) > 0 {
		b.WriteString("Settings:")
		for i, k := range slices.Sorted(maps.Keys(run.Settings)) {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " `--%s=%s`", k, run.Settings[k])
		}
		b.WriteString("\n\n")
	}
	for _, m := range run.Measurements {
		fmt.Fprintf(&b, "- %s: %s\n", m.Name, m.Value)
	}
	if len(run.Measurements) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| ID | from | request | expected | observed | verdict | time |\n|---|---|---|---|---|---|---|\n")
	for _, r := range run.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.ID, cell(r.From), cell(r.Request), cell(r.Expected),
			cell(r.Observed), verdictCell(r), r.Duration.Round(1e6))
	}
	var notes []Result
	for _, r := range run.Results {
		if r.Verdict != Pass {
			notes = append(notes, r)
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n## Not passed\n\n")
		for _, r := range notes {
			fmt.Fprintf(&b, "- **%s** %s: %s", r.ID, r.Verdict, r.Message)
			if r.Diagnostics != "" {
				fmt.Fprintf(&b, " (diagnostics: `%s`)", r.Diagnostics)
			}
			b.WriteString("\n")
		}
	}
	if len(run.TeardownFailures) > 0 {
		b.WriteString("\n## Teardown failures\n\n")
		for _, t := range run.TeardownFailures {
			fmt.Fprintf(&b, "- **%s** %s: %s\n", t.Group, t.Scenario, t.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verdictCell(r Result) string {
	switch r.Verdict {
	case Pass:
		return "pass"
	case Fail:
		return "**FAIL**"
	case Error:
		if r.NotRun {
			return "**NOT RUN**"
		}
		return "**ERROR**"
	default:
		return "skip"
	}
}

// cell escapes a value for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
