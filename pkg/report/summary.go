package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/egressconf/egressconf/pkg/backend"
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
	if len(run.Adaptations) > 0 {
		b.WriteString("Adaptations (what the harness changed in catalog objects before applying them):\n\n")
		for _, a := range run.Adaptations {
			fmt.Fprintf(&b, "- %s\n", a)
		}
		b.WriteString("\n")
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
	if len(run.Predictions) == 0 {
		b.WriteString("| ID | from | request | expected | observed | verdict | time |\n|---|---|---|---|---|---|---|\n")
		for _, r := range run.Results {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.ID, cell(r.From), cell(r.Request), cell(r.Expected),
				cell(r.Observed), verdictCell(r), r.Duration.Round(1e6))
		}
	} else {
		writePredictedTable(&b, run)
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

// predictionOrder is the order oracles' columns appear in: the documents' side first, the
// observation last.
var predictionOrder = []backend.Oracle{backend.OracleOffline, backend.OracleLiveControlPlane, backend.OracleLiveDataPlane}

// columnTitle names an oracle's column.
func columnTitle(o backend.Oracle) string {
	switch o {
	case backend.OracleOffline:
		return "predicted offline"
	case backend.OracleLiveControlPlane:
		return "predicted from the live control plane"
	case backend.OracleLiveDataPlane:
		return "observed"
	}
	return string(o)
}

// writePredictedTable is the truth table of a run whose results carry predictions: per ID the
// document's expectation, each oracle's answer (verdict and outcome), the run's verdict.
func writePredictedTable(b *strings.Builder, run *Run) {
	have := map[backend.Oracle]string{run.Backend.Oracle: ""}
	for _, p := range run.Predictions {
		have[p.Oracle] = p.Run
	}
	var cols []backend.Oracle
	for _, o := range predictionOrder {
		if _, ok := have[o]; ok {
			cols = append(cols, o)
		}
	}
	fmt.Fprintf(b, "The verdict is the run's own oracle's (%s); the predictions are recorded beside it and never decide it.\n\n", columnTitle(run.Backend.Oracle))
	for _, p := range run.Predictions {
		if p.Run != "" {
			fmt.Fprintf(b, "- %s: joined from run `%s` (%s)\n", columnTitle(p.Oracle), p.Run, p.File)
		}
	}
	b.WriteString("\n| ID | from | request | documented |")
	for _, o := range cols {
		fmt.Fprintf(b, " %s |", columnTitle(o))
	}
	b.WriteString(" verdict | time |\n|---|---|---|---|")
	b.WriteString(strings.Repeat("---|", len(cols)+2) + "\n")
	for _, r := range run.Results {
		fmt.Fprintf(b, "| %s | %s | %s | %s |", r.ID, cell(r.From), cell(r.Request), cell(r.Expected))
		for _, o := range cols {
			switch p := r.PredictionBy(o); {
			case o == r.Oracle:
				fmt.Fprintf(b, " %s |", answerCell(answerWord(r.Verdict, r.NotRun), r.Observed, r.Capability))
			case p != nil:
				fmt.Fprintf(b, " %s |", answerCell(answerWord(p.Verdict, false), p.Observed, p.Capability))
			default:
				b.WriteString(" — |")
			}
		}
		fmt.Fprintf(b, " %s | %s |\n", verdictCell(r), r.Duration.Round(1e6))
	}
}

// answerCell is an oracle's answer in a cell: the verdict, what was observed or predicted, and a
// skip's missing capability.
func answerCell(word, observed, capability string) string {
	s := word
	if observed != "" {
		s += " " + cell(observed)
	}
	if capability != "" {
		s += " (no " + capability + ")"
	}
	return s
}

func answerWord(v Verdict, notRun bool) string {
	if v == Error && notRun {
		return "NOT RUN"
	}
	return strings.ToUpper(string(v))
}
