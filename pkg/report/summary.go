package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteSummary writes the truth table a person reads at a glance (Markdown; it renders as a CI step
// summary too): ID, from, request, expected, observed, verdict, time.
func WriteSummary(w io.Writer, run *Run) error {
	c := run.Counts()
	var b strings.Builder
	fmt.Fprintf(&b, "# egressconf run %s\n\n", run.ID)
	fmt.Fprintf(&b, "**%s** — backend `%s`, %s.\n\n", overall(run), run.Backend.Name, run.Backend.Oracle.Claim())
	fmt.Fprintf(&b, "| passed | failed | errors | skipped | total |\n|---|---|---|---|---|\n| %d | %d | %d | %d | %d |\n\n",
		c.Passed, c.Failed, c.Errored, c.Skipped, c.Total())
	if run.Backend.IstioVersion != "" {
		fmt.Fprintf(&b, "Istio control plane: %s", run.Backend.IstioVersion)
		if run.Backend.MeshVersion != "" {
			fmt.Fprintf(&b, "; mesh: %s", run.Backend.MeshVersion)
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
	_, err := io.WriteString(w, b.String())
	return err
}

func overall(run *Run) string {
	if run.OK() {
		return "PASSED"
	}
	return "FAILED"
}

func verdictCell(r Result) string {
	switch r.Verdict {
	case Pass:
		return "pass"
	case Fail:
		return "**FAIL**"
	case Error:
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
