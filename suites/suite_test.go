package suites_test

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/suites"
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
	var groups []string // in the order they ran
	run, out, err := conformance.Run(t, conformance.Options{
		Backend:    sim.New(),
		ReportsDir: dir,
		Progress:   os.Stdout,
		Transform:  adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true}),
		OnResult: func(r report.Result) {
			if len(groups) == 0 || groups[len(groups)-1] != r.Group {
				groups = append(groups, r.Group)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := run.Counts()
	t.Logf("%d passed, %d failed, %d errors, %d skipped; reports in %s", c.Passed, c.Failed, c.Errored, c.Skipped, out)
	if c.Total() != 62 {
		t.Errorf("%d results, want one for each of the 62 IDs", c.Total())
	}
	// Groups run in catalog order, whatever Ginkgo's random seed (a live backend keeps what
	// consecutive groups share).
	c0, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, sc := range c0.Scenarios {
		want = append(want, sc.Metadata.Group)
	}
	if !slices.Equal(groups, want) {
		t.Errorf("groups ran in the order %v, want the catalog's %v", groups, want)
	}
	for _, f := range []string{report.JUnitFile, report.SummaryFile, report.ConformanceFile} {
		if st, err := os.Stat(out + "/" + f); err != nil || st.Size() == 0 {
			t.Errorf("report %s not written: %v", f, err)
		}
	}
}

// TestMain runs, when asked, a conformance run in a child process (Ginkgo runs one suite per
// process): EGRESSCONF_FAILING_G1_REPORTS=DIR runs G1 and G2 with G1's curl checks made to fail.
func TestMain(m *testing.M) {
	if dir := os.Getenv("EGRESSCONF_FAILING_G1_REPORTS"); dir != "" {
		c, err := suites.Builtin()
		if err == nil {
			for i := range c.Scenarios[0].Spec.Steps {
				for _, e := range c.Scenarios[0].Spec.Steps[i].Expect {
					for _, ch := range e.Checks {
						if ch.Expect != nil {
							ch.Expect.BodyContains = "a body no stand-in sends"
						}
					}
				}
			}
			_, _, err = conformance.Run(nil, conformance.Options{Backend: sim.New(), Catalog: c, ReportsDir: dir, RunID: "failing-g1",
				Groups: []string{"G1", "G2"}, Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true})})
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFailedGroupDoesNotStopTheNext: the groups share one ordered container (catalog order), and a
// failed expectation neither skips the rest of its group nor the groups after it.
func TestFailedGroupDoesNotStopTheNext(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the offline backend in a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EGRESSCONF_FAILING_G1_REPORTS="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "failing-g1", report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var run report.Run
	if err := json.Unmarshal(data, &run); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Verdict{}
	for _, r := range run.Results {
		got[r.ID] = r.Verdict
		if r.NotRun {
			t.Errorf("%s not run: %s", r.ID, r.Message)
		}
	}
	for _, id := range []string{"DENYNS-01", "DENYNS-02", "DENYNS-03", "DENYNS-04"} {
		if got[id] != report.Fail {
			t.Errorf("%s: %s, want fail (its body check cannot hold)", id, got[id])
		}
	}
	for _, id := range []string{"ETP-BASE-01", "ETP-BASE-02", "ETP-HTTP-01", "ETP-HTTP-04"} {
		if got[id] != report.Pass {
			t.Errorf("%s: %s, want pass (G2 runs after G1 failed)", id, got[id])
		}
	}
}
