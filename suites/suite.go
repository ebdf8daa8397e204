// Package suites holds egressconf's built-in scenario catalog (the catalog/ directory, embedded) and
// turns a catalog into Ginkgo specs: one Ordered container per scenario, one It per expectation with
// its ID in the name. `go test ./suites/...` and `egressconf run` run the same specs.
package suites

import (
	"context"
	"embed"
	"fmt"

	"github.com/onsi/ginkgo/v2"

	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

//go:embed all:catalog
var catalogFS embed.FS

// Builtin loads the built-in catalog.
func Builtin() (*catalog.Catalog, error) {
	return catalog.LoadFS(catalogFS, "catalog")
}

//go:embed all:corpus
var corpusFS embed.FS

// Corpus loads the feature corpus (suites/corpus): egress cases beyond the seeds, one per field of
// Istio's API that changes an egress outcome, under the feature-corpus profile. It is not part of
// the seeds' conformance; it measures the Envoy model against a real Envoy.
func Corpus() (*catalog.Catalog, error) {
	return catalog.LoadFS(corpusFS, "corpus")
}

// Define registers the specs of every scenario of c on Ginkgo's suite; r executes them. Call it
// before ginkgo.RunSpecs. When ctx ends (SIGINT, a cancelled run), the running expectation is
// interrupted and every later one is not run; teardowns still run.
//
// The scenarios run in catalog order: one ordered top-level container holds them (Ginkgo shuffles
// top-level containers and sorts the rest by code location and text, G10 before G2), so a live run keeps the namespaces and fixtures that consecutive groups
// share (live.Backend carries them) and two runs of a catalog do the same things in the same order.
func Define(ctx context.Context, c *catalog.Catalog, r *runner.Runner) {
	ginkgo.Describe("egressconf", ginkgo.Ordered, ginkgo.ContinueOnFailure, func() {
		for _, s := range c.Scenarios {
			defineScenario(ctx, s, r)
		}
	})
}

// scenarioRun tracks how far a scenario's steps have been applied, so that steps without
// expectations (setup steps) run before the next expectation, and a focused run still applies
// every earlier step.
type scenarioRun struct {
	s       *catalog.Scenario
	r       *runner.Runner
	begun   bool
	stepped int
}

func (sr *scenarioRun) advance(ctx context.Context, upTo int) {
	if !sr.begun {
		sr.r.Begin(ctx, sr.s)
		sr.begun = true
	}
	for ; sr.stepped <= upTo && sr.stepped < len(sr.s.Spec.Steps); sr.stepped++ {
		sr.r.Step(ctx, sr.stepped, &sr.s.Spec.Steps[sr.stepped])
	}
}

func defineScenario(runCtx context.Context, s *catalog.Scenario, r *runner.Runner) {
	sr := &scenarioRun{s: s, r: r}
	name := fmt.Sprintf("%s %s: %s", s.Metadata.Group, s.Metadata.Name, s.Spec.Title)
	ginkgo.Describe(name, ginkgo.Ordered, ginkgo.Label(s.Metadata.Group, s.Spec.Profile), func() {
		for si := range s.Spec.Steps {
			st := &s.Spec.Steps[si]
			for ei := range st.Expect {
				e := &st.Expect[ei]
				ginkgo.It(fmt.Sprintf("%s %s", e.ID, describe(e)), ginkgo.Label(e.ID, e.Kind), func(specCtx ginkgo.SpecContext) {
					if runCtx.Err() != nil {
						ginkgo.Skip("not run: the run was interrupted")
					}
					ctx, cancel := context.WithCancel(specCtx)
					defer cancel()
					stop := context.AfterFunc(runCtx, cancel)
					defer stop()
					sr.advance(ctx, si)
					res := r.Check(ctx, st, e)
					switch res.Verdict {
					case report.Pass:
					case report.Skip:
						ginkgo.Skip(res.Message)
					case report.Error:
						ginkgo.Fail(fmt.Sprintf("%s ERROR (not observed): %s", e.ID, res.Message))
					default:
						ginkgo.Fail(fmt.Sprintf("%s FAIL: %s", e.ID, res.Message))
					}
				})
			}
		}
		ginkgo.AfterAll(func(ctx ginkgo.SpecContext) {
			if !sr.begun {
				return
			}
			if err := r.End(ctx); err != nil {
				ginkgo.Fail(err.Error())
			}
		})
	})
}

func describe(e *catalog.Expectation) string {
	c := e.Checks[0]
	if c.Log != nil {
		return "log(" + c.Log.Workload + ")"
	}
	d := c.From + ": " + c.Curl
	if len(e.Checks) > 1 {
		d += fmt.Sprintf(" (+%d checks)", len(e.Checks)-1)
	}
	return d
}
