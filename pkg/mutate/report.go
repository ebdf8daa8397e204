package mutate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/egressconf/egressconf/pkg/report"
)

// Report file names inside the run's report directory.
const (
	MarkdownFile = "mutate.md"
	JSONFile     = "mutate.json"
)

// OK reports whether every expectation is discriminating or declared holdsRegardless, and every
// expectation that could be checked passed unmutated: anything else fails the check. An
// expectation skipped on the backend (a capability it lacks) is listed and does not fail it.
func (r *Result) OK() bool {
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == NotDiscriminating || (e.Status == BaselineNotPass && e.Baseline != report.Skip) {
				return false
			}
		}
	}
	return true
}

// Verdict is the one-line summary printed last.
func (r *Result) Verdict() string {
	word := "MUTATION CHECK PASSED"
	if !r.OK() {
		word = "MUTATION CHECK FAILED"
	}
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	line := fmt.Sprintf("%s: %d expectations: %d discriminating, %d declared holdsRegardless, %d not discriminating, %d not passing unmutated (%d skipped); %d runs in %s",
		word, total, r.Counts[Discriminating], r.Counts[HoldsRegardless], r.Counts[NotDiscriminating], r.Counts[BaselineNotPass], r.skipped(), r.Runs, r.Duration.Round(time.Millisecond))
	if nd := r.ids(NotDiscriminating); len(nd) > 0 {
		line += "; not discriminating: " + strings.Join(nd, ", ")
	}
	return line
}

func (r *Result) skipped() int {
	n := 0
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == BaselineNotPass && e.Baseline == report.Skip {
				n++
			}
		}
	}
	return n
}

func (r *Result) ids(s Status) []string {
	var out []string
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == s {
				out = append(out, e.ID)
			}
		}
	}
	return out
}

// Write writes mutate.md and mutate.json into dir and returns their paths.
func Write(dir string, r *Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	md, js := filepath.Join(dir, MarkdownFile), filepath.Join(dir, JSONFile)
	if err := os.WriteFile(js, append(j, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(md, []byte(r.Markdown()), 0o644); err != nil {
		return nil, err
	}
	return []string{md, js}, nil
}

// Markdown is the report: the verdict, the expectations that need attention, the declared ones,
// and per group the table of expectations by mutation.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Mutation check of the catalog (%s)\n\n", r.Catalog)
	fmt.Fprintf(&b, "Backend %s: %s. Every change a group makes was left out in turn and the group run again\n", r.Backend.Name, r.Backend.Oracle.Claim())
	b.WriteString("through its last expectation; a cell says whether the expectation's verdict flipped from pass.\n")
	b.WriteString("It shows which checks the offline model can tell apart from the mesh without the change, not what Envoy does.\n\n")
	fmt.Fprintf(&b, "**%s**\n\n", r.Verdict())

	b.WriteString("## Not discriminating\n\n")
	n := 0
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == NotDiscriminating {
				n++
				fmt.Fprintf(&b, "- %s (%s, step %s) passes with each of these left out: %s\n", e.ID, g.Group, e.Step, orNone(e.NotMattering))
			}
		}
	}
	if n == 0 {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Discriminating only through verdicts that are not observations\n\n")
	b.WriteString("Without the change these do not pass, but only as an error or skip (e.g. a log check whose probes'\n")
	b.WriteString("expectation failed first): no mutated run observed them fail.\n\n")
	n = 0
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == Discriminating && e.FlipsOnlyUnobserved {
				n++
				fmt.Fprintf(&b, "- %s (%s): flipped by %s\n", e.ID, g.Group, orNone(e.FlippedBy))
			}
		}
	}
	if n == 0 {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Declared to hold regardless (holdsRegardless)\n\n")
	n = 0
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == HoldsRegardless {
				n++
				fmt.Fprintf(&b, "- %s (%s): %s — flipped by: %s\n", e.ID, g.Group, e.HoldsRegardless, orNone(e.FlippedBy))
			}
		}
	}
	if n == 0 {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Not passing unmutated (nothing shown about them)\n\n")
	n = 0
	for _, g := range r.Groups {
		for _, e := range g.Expectations {
			if e.Status == BaselineNotPass {
				n++
				fmt.Fprintf(&b, "- %s (%s): %s: %s\n", e.ID, g.Group, e.Baseline, e.BaselineMessage)
			}
		}
	}
	if n == 0 {
		b.WriteString("None.\n")
	}

	for _, g := range r.Groups {
		fmt.Fprintf(&b, "\n## %s %s: %s\n\n", g.Group, g.Name, g.Title)
		fmt.Fprintf(&b, "%d mutations, %d runs, %s.\n\n", len(g.Mutations), g.Runs, g.Duration.Round(time.Millisecond))
		if len(g.Expectations) == 0 {
			b.WriteString("No expectations.\n")
			continue
		}
		for i, m := range g.Mutations {
			fmt.Fprintf(&b, "- M%d `%s`: %s\n", i+1, m.Name, m.Describe())
		}
		b.WriteString("\n| expectation | unmutated | status |")
		for i := range g.Mutations {
			fmt.Fprintf(&b, " M%d |", i+1)
		}
		b.WriteString("\n|---|---|---|")
		for range g.Mutations {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, e := range g.Expectations {
			cells := map[string]Cell{}
			for _, c := range e.Cells {
				cells[c.Mutation] = c
			}
			fmt.Fprintf(&b, "| %s | %s | %s |", e.ID, e.Baseline, e.Status)
			for _, m := range g.Mutations {
				c, ok := cells[m.Name]
				switch {
				case !ok:
					b.WriteString(" · |") // a later step's change: cannot affect it
				case c.Flipped:
					fmt.Fprintf(&b, " **flip→%s** |", c.Verdict)
				default:
					fmt.Fprintf(&b, " %s |", c.Verdict)
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n`·`: the change comes after the expectation and cannot affect it.\n")
	}
	return b.String()
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
