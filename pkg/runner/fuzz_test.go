package runner_test

import (
	"context"
	"io"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/runner"
)

// FuzzRunScenario loads a scenario.yaml (beside testdata/basic's resource files), validates it and,
// when it is valid, runs it on the fake backend: every expectation must end with exactly one result,
// whatever the steps, checks and outcomes say.
func FuzzRunScenario(f *testing.F) {
	for _, dir := range []string{"testdata/basic", "testdata/logafter"} {
		data, err := os.ReadFile(dir + "/scenario.yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	files := fstest.MapFS{}
	for _, name := range []string{"se.yaml", "np.yaml", "hosts.yaml"} {
		data, err := os.ReadFile("testdata/basic/" + name)
		if err != nil {
			f.Fatal(err)
		}
		files["s/"+name] = &fstest.MapFile{Data: data}
	}
	to := runner.DefaultTimeouts()
	to.ProbeInterval, to.NegativeHold = time.Millisecond, 2*time.Millisecond
	to.Eventually, to.AccessLog = 5*time.Millisecond, 5*time.Millisecond
	to.PositiveSuccesses = 2
	f.Fuzz(func(t *testing.T, scenario []byte) {
		fsys := fstest.MapFS{"s/scenario.yaml": &fstest.MapFile{Data: scenario}}
		for k, v := range files {
			fsys[k] = v
		}
		c, err := catalog.LoadFS(fsys, "s")
		if err != nil {
			return
		}
		if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
			return
		}
		s := c.Scenarios[0]
		want := map[string]bool{}
		for _, st := range s.Spec.Steps {
			for _, e := range st.Expect {
				want[e.ID] = true
			}
		}
		r := runner.New(runner.Options{Backend: fakebackend.New(mesh), Timeouts: to, Progress: io.Discard, ReportDir: t.TempDir()})
		_ = r.RunScenario(context.Background(), s) // a scenario may fail; its results must still be whole
		got := map[string]int{}
		for _, res := range r.Results() {
			got[res.ID]++
			if !want[res.ID] {
				t.Fatalf("result for %s, which the scenario does not hold", res.ID)
			}
			if res.Verdict == "" {
				t.Fatalf("%s: result without a verdict", res.ID)
			}
		}
		for id := range want {
			if got[id] != 1 {
				t.Fatalf("%s: %d results, want exactly 1", id, got[id])
			}
		}
	})
}
