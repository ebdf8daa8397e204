package suites_test

import (
	"context"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/suites"
)

// TestCorpusOffline runs the feature corpus on the offline backend. Its expectations are checked
// through a real Envoy (scripts/ci-live.sh, kind-corpus); offline, the model must agree with each
// or say it is out of model: a prediction that fails or errs is a model bug.
func TestCorpusOffline(t *testing.T) {
	c, err := suites.Corpus()
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	ids := 0
	for _, s := range c.Scenarios {
		if s.Spec.Profile != "feature-corpus" {
			t.Errorf("%s: profile %q, want feature-corpus (the corpus is not the seeds' conformance)", s.File, s.Spec.Profile)
		}
		for _, st := range s.Spec.Steps {
			ids += len(st.Expect)
		}
	}
	if ids < 40 {
		t.Errorf("the corpus has %d IDs, want at least 40", ids)
	}
	// The runner directly: conformance.Run drives Ginkgo, which runs once per test binary
	// (TestConformance has it).
	out := t.TempDir()
	r := runner.New(runner.Options{Backend: sim.New(), Timeouts: runner.DefaultTimeouts(), ReportDir: out,
		Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true})})
	for _, s := range c.Scenarios {
		if err := r.RunScenario(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s.File, err)
		}
	}
	results := r.Results()
	if len(results) != ids {
		t.Errorf("%d results, want one per ID (%d)", len(results), ids)
	}
	for _, r := range results {
		switch {
		case r.Verdict == report.Pass:
		case r.Verdict == report.Skip && strings.Contains(r.Message, "out of model"):
			t.Logf("%s: %s", r.ID, r.Message)
		default:
			t.Errorf("%s: %s: %s (observed %s, expected %s); reports in %s", r.ID, r.Verdict, r.Message, r.Observed, r.Expected, out)
		}
	}
}
