package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes one test case per expectation ID, one suite per group. Every suite carries the
// backend and oracle as properties so CI never shows a prediction as an observation.
//
// The run's verdict (Decide) is the run.result property of every suite; a not-run ID is an
// <error>, a failed teardown is an <error> case of its group, and a run that is not passed for a
// reason no case shows (nothing passed, interrupted after the last ID) gets an <error> case of its
// own, so a JUnit reader never sees a clean file for a run that exited non-zero.
func WriteJUnit(w io.Writer, run *Run) error {
	d := Decide(run)
	selection := "not recorded"
	if run.Selection != nil {
		selection = run.Selection.Describe()
	}
	bySuite := map[string]*junitSuite{}
	var order []string
	suite := func(name, profile string) *junitSuite {
		s, ok := bySuite[name]
		if !ok {
			s = &junitSuite{Name: name, Properties: []junitProperty{
				{Name: "backend", Value: run.Backend.Name},
				{Name: "oracle", Value: string(run.Backend.Oracle)},
				{Name: "claim", Value: run.Backend.Oracle.Claim()},
				{Name: "istio.version", Value: run.Backend.IstioVersion},
				{Name: "profile", Value: profile},
				{Name: "run.result", Value: d.Result},
				{Name: "run.interrupted", Value: fmt.Sprint(run.Interrupted)},
				{Name: "run.selection", Value: selection},
			}}
			if run.Backend.NetworkPolicy != "" {
				s.Properties = append(s.Properties, junitProperty{Name: "networkPolicy", Value: run.Backend.NetworkPolicy})
			}
			if run.Backend.ClusterDNS != "" {
				s.Properties = append(s.Properties, junitProperty{Name: "clusterDNS", Value: run.Backend.ClusterDNS})
			}
			for _, a := range run.Adaptations {
				if strings.HasPrefix(name, a.Group+" ") {
					s.Properties = append(s.Properties, junitProperty{Name: "adaptation", Value: a.String()})
				}
			}
			bySuite[name] = s
			order = append(order, name)
		}
		return s
	}
	for _, r := range run.Results {
		s := suite(r.Group+" "+r.Scenario, r.Profile)
		c := junitCase{
			Name:      fmt.Sprintf("%s: %s", r.ID, r.Request),
			Classname: "egressconf." + r.Scenario,
			Time:      secs(r.Duration.Seconds()),
			SystemOut: caseOutput(r),
		}
		switch r.Verdict {
		case Fail:
			c.Failure = &junitMessage{Message: r.Message, Type: "expectation", Body: caseOutput(r)}
			s.Failures++
		case Error:
			typ := "error"
			if r.NotRun {
				typ = "not-run"
			}
			c.Error = &junitMessage{Message: r.Message, Type: typ, Body: caseOutput(r)}
			s.Errors++
		case Skip:
			c.Skipped = &junitMessage{Message: r.Message}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	errs := 0
	for _, s := range bySuite {
		errs += s.Failures + s.Errors
	}
	for _, t := range run.TeardownFailures {
		s := suite(t.Group+" "+t.Scenario, "")
		s.Cases = append(s.Cases, junitCase{Name: "teardown " + t.Group, Classname: "egressconf." + t.Scenario, Time: secs(0),
			Error: &junitMessage{Message: t.Error, Type: "teardown"}})
		s.Tests++
		s.Errors++
		errs++
	}
	if !d.Passed() && errs == 0 || run.Interrupted {
		s := suite("egressconf run", "")
		s.Cases = append(s.Cases, junitCase{Name: "run " + run.ID + ": " + d.Word, Classname: "egressconf.run", Time: secs(0),
			Error: &junitMessage{Message: d.Word + ": " + strings.Join(d.Reasons, "; "), Type: d.Result}})
		s.Tests++
		s.Errors++
	}
	if len(order) == 0 {
		// Nothing selected: the file still carries the run's verdict.
		s := suite("egressconf run", "")
		s.Cases = append(s.Cases, junitCase{Name: "run " + run.ID + ": " + d.Word, Classname: "egressconf.run", Time: secs(0),
			Skipped: &junitMessage{Message: d.Word + ": " + strings.Join(d.Reasons, "; ")}})
		s.Tests++
		s.Skipped++
	}
	out := junitSuites{Name: "egressconf " + run.ID, Time: secs(run.Finished.Sub(run.Started).Seconds())}
	for _, n := range order {
		s := bySuite[n]
		var total float64
		for _, c := range s.Cases {
			var f float64
			fmt.Sscanf(c.Time, "%f", &f)
			total += f
		}
		s.Time = secs(total)
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func caseOutput(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] backend=%s oracle=%s\n", r.ID, r.Kind, r.Backend, r.Oracle)
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "- %s: expected %s, observed %s: %s", c.Description, c.Expected, c.Observed, c.Verdict)
		if c.Message != "" {
			fmt.Fprintf(&b, " (%s)", c.Message)
		}
		b.WriteString("\n")
	}
	// Predictions are said as predictions, never as the case's outcome.
	for _, p := range r.Predictions {
		fmt.Fprintf(&b, "predicted (%s", p.Oracle)
		if p.Run != "" {
			fmt.Fprintf(&b, ", run %s", p.Run)
		}
		fmt.Fprintf(&b, "): %s %q", p.Verdict, p.Observed)
		if p.Message != "" {
			fmt.Fprintf(&b, " (%s)", p.Message)
		}
		b.WriteString("\n")
	}
	if r.Diagnostics != "" {
		fmt.Fprintf(&b, "diagnostics: %s\n", r.Diagnostics)
	}
	return b.String()
}

func secs(s float64) string { return fmt.Sprintf("%.3f", s) }
