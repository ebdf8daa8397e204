package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/egressconf/egressconf/pkg/catalog"
)

// HTMLFile is the page every run writes beside summary.md.
const HTMLFile = "report.html"

// The page is one file with its CSS and JS inline: it is opened from a CI artifact or a laptop,
// offline, and must not fetch anything.
//
//go:embed html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// WriteHTML writes the differential of one or more runs as a self-contained page: the truth table
// of groups x IDs, one cell per run, filters by group, verdict and class (read from and written to
// the URL's #group=..&verdict=..&class=.. as well), and every cell expanding to the expectation's
// source, its checks and diagnostics.
func WriteHTML(w io.Writer, d *Differential) error {
	return htmlTemplate.Execute(w, newHTMLPage(d, false))
}

// writeRunHTML is report.html of one run, written into the run's directory: diagnostics link
// relative to it.
func writeRunHTML(w io.Writer, run *Run) error {
	p := newHTMLPage(NewDifferential(run), true)
	// A run with predictions has a column per oracle, classified; it is still one run.
	d := Decide(run)
	p.Title = fmt.Sprintf("egressconf run %s: %s", run.ID, d.Word)
	return htmlTemplate.Execute(w, p)
}

type htmlPage struct {
	Title   string
	Multi   bool
	Runs    []htmlRun
	Groups  []string
	Classes []htmlClass
	Verdict []htmlVerdict
	Rows    []htmlRow
}

type htmlRun struct {
	ID, Backend, Oracle, Claim, Word, Result, Istio, Proxy, Selection, Settings string
	// Note says that a column holds predictions recorded in another run's results.
	Note         string
	Counts       Counts
	Reasons      []string
	Interrupted  bool
	Teardown     []TeardownFailure
	Measurements []Measurement
	Adaptations  []Adaptation
}

type htmlClass struct {
	Name, Title, Explain string
	Count                int
}

type htmlVerdict struct{ Token, Word string }

type htmlRow struct {
	ID, Group, Scenario, Kind, From, Request, Expected, Drift string
	Source                                                    *catalog.Citation
	Cells                                                     []htmlCell
	Verdicts, ClassAttr                                       string
	Classes                                                   []htmlClass
	Reasons                                                   []string
	Differs                                                   bool
}

type htmlCell struct {
	Present                         bool
	RunID, Token, Word              string
	Observed, Message, Capability   string
	Duration                        string
	Checks                          []htmlCheck
	Diagnostics, DiagLink           string
	Source                          *catalog.Citation
	Expected, Request, From, Oracle string
}

type htmlCheck struct {
	Description, Expected, Observed, Word, Token, Message, Duration string
	Attempts                                                        int
	Probes                                                          []string
}

// verdictToken is the verdict as a CSS class and filter value.
func verdictToken(r *Result) string {
	if r == nil {
		return "none"
	}
	if r.Verdict == Error && r.NotRun {
		return "not-run"
	}
	return string(r.Verdict)
}

var htmlVerdicts = []htmlVerdict{{"pass", "PASS"}, {"fail", "FAIL"}, {"error", "ERROR"}, {"not-run", "NOT RUN"}, {"skip", "SKIP"}, {"none", "NO RESULT"}}

func newHTMLPage(d *Differential, inRunDir bool) htmlPage {
	p := htmlPage{Multi: len(d.Runs) > 1, Groups: d.Groups(), Verdict: htmlVerdicts}
	var ids []string
	for _, run := range d.Runs {
		dec := Decide(run)
		hr := htmlRun{
			ID: run.ID, Backend: run.Backend.Name, Oracle: string(run.Backend.Oracle), Claim: run.Backend.Oracle.Claim(),
			Word: dec.Word, Result: dec.Result, Reasons: dec.Reasons, Counts: run.Counts(), Interrupted: run.Interrupted,
			Istio: run.Backend.IstioVersion, Proxy: run.Backend.Proxy, Teardown: run.TeardownFailures, Measurements: run.Measurements,
			Adaptations: run.Adaptations,
		}
		if run.viewOf != "" {
			// Predictions recorded beside another run's results: no verdict of their own.
			hr.Word, hr.Result, hr.Reasons = "PREDICTIONS", "", nil
			hr.Note = fmt.Sprintf("predictions recorded in run %s beside its results; they decide none of its verdicts", run.viewOf)
			if run.joinedFrom != "" {
				hr.Note += fmt.Sprintf(" (joined from run %s)", run.joinedFrom)
			}
		}
		if run.Backend.MeshVersion != "" {
			hr.Istio = strings.TrimPrefix(hr.Istio+"; mesh "+run.Backend.MeshVersion, "; ")
		}
		if s := run.Selection; s != nil {
			hr.Selection = s.Describe()
			if !s.Full {
				hr.Selection += " (a subset, not full conformance)"
			}
		}
		p.Runs = append(p.Runs, hr)
		ids = append(ids, run.ID)
	}
	if p.Multi {
		p.Title = "egressconf differential: " + strings.Join(ids, " vs ")
		counts := d.ClassCounts()
		for _, c := range Classes {
			p.Classes = append(p.Classes, htmlClass{Name: string(c), Title: c.Title(), Explain: c.Explain(), Count: counts[c]})
		}
	} else if len(p.Runs) == 1 {
		p.Title = fmt.Sprintf("egressconf run %s: %s", p.Runs[0].ID, p.Runs[0].Word)
	}
	for i := range d.Rows {
		row := &d.Rows[i]
		e := row.Expectation()
		hr := htmlRow{ID: row.ID, Group: row.Group, Scenario: row.Scenario, Reasons: row.Reasons, Differs: row.Differs}
		if e != nil {
			hr.Kind, hr.From, hr.Request, hr.Expected, hr.Drift, hr.Source = e.Kind, e.From, e.Request, e.Expected, e.Drift, e.Source
		}
		var tokens, classes []string
		for ri, r := range row.Results {
			c := htmlCell{RunID: d.Runs[ri].ID, Token: verdictToken(r), Word: "NO RESULT"}
			if r != nil {
				c.Present, c.Word = true, VerdictWord(r)
				c.Observed, c.Message, c.Capability = r.Observed, r.Message, r.Capability
				c.Duration = r.Duration.Round(time.Millisecond).String()
				c.Source, c.Expected, c.Request, c.From = r.Source, r.Expected, r.Request, r.From
				c.Oracle = string(oracleOf(d.Runs[ri], r))
				c.Diagnostics = r.Diagnostics
				if inRunDir && r.Diagnostics != "" && filepath.Base(r.Diagnostics) == r.ID {
					c.DiagLink = "diagnostics/" + r.ID + "/"
				}
				for _, ch := range r.Checks {
					c.Checks = append(c.Checks, htmlCheck{
						Description: ch.Description, Expected: ch.Expected, Observed: ch.Observed, Word: strings.ToUpper(string(ch.Verdict)),
						Token: string(ch.Verdict), Message: ch.Message, Duration: ch.Duration.Round(time.Millisecond).String(),
						Attempts: ch.Attempts, Probes: ch.Probes,
					})
				}
			}
			if !contains(tokens, c.Token) {
				tokens = append(tokens, c.Token)
			}
			hr.Cells = append(hr.Cells, c)
		}
		for _, c := range row.Classes {
			classes = append(classes, string(c))
			hr.Classes = append(hr.Classes, htmlClass{Name: string(c), Title: c.Title()})
		}
		hr.Verdicts, hr.ClassAttr = strings.Join(tokens, " "), strings.Join(classes, " ")
		p.Rows = append(p.Rows, hr)
	}
	return p
}
