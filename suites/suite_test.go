package suites_test

import (
	"flag"
	"os"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/report"
)

var (
	backendFlag = flag.String("egressconf.backend", "sim", "backend to run the suite on (go test runs the offline backend)")
	reportsFlag = flag.String("egressconf.reports", "", "directory for reports/<run>/ (default: a temporary directory)")
)

// TestConformance runs the built-in catalog through the same Ginkgo suite as `egressconf run`.
func TestConformance(t *testing.T) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	if *backendFlag != "sim" {
		t.Skipf("go test runs the offline backend; use egressconf run --backend %s", *backendFlag)
	}
	dir := *reportsFlag
	if dir == "" {
		dir = t.TempDir()
	}
	run, out, err := conformance.Run(t, conformance.Options{
		Backend:    sim.New(),
		ReportsDir: dir,
		Progress:   os.Stdout,
		Transform:  adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true}),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := run.Counts()
	t.Logf("%d passed, %d failed, %d errors, %d skipped; reports in %s", c.Passed, c.Failed, c.Errored, c.Skipped, out)
	if c.Total() != 62 {
		t.Errorf("%d results, want one for each of the 62 IDs", c.Total())
	}
	for _, f := range []string{report.JUnitFile, report.SummaryFile, report.ConformanceFile} {
		if st, err := os.Stat(out + "/" + f); err != nil || st.Size() == 0 {
			t.Errorf("report %s not written: %v", f, err)
		}
	}
}
