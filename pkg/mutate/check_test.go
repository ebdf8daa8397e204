package mutate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
)

func loadTestCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.LoadPaths("testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckOnTheOfflineBackend runs the test catalog's mutations on the offline backend and
// asserts each expectation's conclusion, and that the whole check fails on the one expectation
// that is not discriminating and not declared.
func TestCheckOnTheOfflineBackend(t *testing.T) {
	res, err := Check(context.Background(), loadTestCatalog(t), Options{Backend: sim.New(), Catalog: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 {
		t.Fatalf("groups: %d, want 1", len(res.Groups))
	}
	g := res.Groups[0]
	// The trailing step's meshPolicy comes after the last expectation: not a mutation.
	var names []string
	for _, m := range g.Mutations {
		names = append(names, m.Name)
	}
	wantNames := []string{"setup -meshPolicy REGISTRY_ONLY", "s1 -apply serviceentry-aliyun.yaml", "s2 -deploy sleep-late@t1", "s3 -delete serviceentry-aliyun.yaml", "s3 -remove sleep-late@t1"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("mutations:\n got %q\nwant %q", names, wantNames)
	}
	if g.Runs != len(wantNames)+1 || res.Runs != g.Runs {
		t.Errorf("runs: group %d, total %d; want %d", g.Runs, res.Runs, len(wantNames)+1)
	}
	rows := map[string]Expectation{}
	for _, e := range g.Expectations {
		rows[e.ID] = e
	}
	want := map[string]struct {
		status    Status
		flippedBy []string
	}{
		"MUT-REG-01": {Discriminating, []string{"s1 -apply serviceentry-aliyun.yaml"}},
		"MUT-LOG-01": {Discriminating, []string{"s1 -apply serviceentry-aliyun.yaml"}},
		// Not flipped by the step-2 deploy: the mutated run still checks MUT-REG-01, whose log it reads.
		"MUT-LOG-02": {Discriminating, []string{"s1 -apply serviceentry-aliyun.yaml"}},
		"MUT-BYP-01": {NotDiscriminating, nil},
		"MUT-BYP-02": {HoldsRegardless, nil},
		"MUT-NEW-01": {Discriminating, []string{"s1 -apply serviceentry-aliyun.yaml", "s2 -deploy sleep-late@t1"}},
		"MUT-DEL-01": {Discriminating, []string{"setup -meshPolicy REGISTRY_ONLY", "s3 -delete serviceentry-aliyun.yaml"}},
	}
	for id, w := range want {
		e, ok := rows[id]
		if !ok {
			t.Errorf("%s: no row", id)
			continue
		}
		if e.Baseline != report.Pass {
			t.Errorf("%s: baseline %s (%s), want pass", id, e.Baseline, e.BaselineMessage)
		}
		if e.Status != w.status || !slices.Equal(e.FlippedBy, w.flippedBy) {
			t.Errorf("%s: %s flipped by %q, want %s flipped by %q", id, e.Status, e.FlippedBy, w.status, w.flippedBy)
		}
	}
	if e := rows["MUT-BYP-01"]; len(e.NotMattering) != 2 || len(e.Cells) != 2 {
		t.Errorf("MUT-BYP-01: %d cells, not mattering %q; want the setup and step-1 mutations", len(e.Cells), e.NotMattering)
	}
	if e := rows["MUT-BYP-02"]; e.HoldsRegardless != "a pod without a sidecar is outside the mesh" {
		t.Errorf("MUT-BYP-02: reason %q", e.HoldsRegardless)
	}
	// The log check only errors (its probes' expectation failed first): flagged as such.
	if !rows["MUT-LOG-01"].FlipsOnlyUnobserved || rows["MUT-REG-01"].FlipsOnlyUnobserved {
		t.Errorf("flipsOnlyUnobserved: MUT-LOG-01 %v (want true), MUT-REG-01 %v (want false)", rows["MUT-LOG-01"].FlipsOnlyUnobserved, rows["MUT-REG-01"].FlipsOnlyUnobserved)
	}
	if res.OK() {
		t.Error("OK() is true with MUT-BYP-01 not discriminating")
	}
	if v := res.Verdict(); !strings.HasPrefix(v, "MUTATION CHECK FAILED") || !strings.Contains(v, "not discriminating: MUT-BYP-01") {
		t.Errorf("verdict: %s", v)
	}

	dir := t.TempDir()
	files, err := Write(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| MUT-BYP-01 | pass | not-discriminating | pass | pass | · | · | · |", "| MUT-REG-01 | pass | discriminating | pass | **flip→fail** |", "- MUT-BYP-02 (T1): a pod without a sidecar is outside the mesh"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("%s lacks %q:\n%s", files[0], s, md)
		}
	}
	var back Result
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil || back.Counts[NotDiscriminating] != 1 || back.Counts[Discriminating] != 5 {
		t.Errorf("%s: %v, counts %v", JSONFile, err, back.Counts)
	}
}

// TestCheckPassesWhenEveryExpectationIsAccountedFor drops the undeclared bypass probe: the check
// then passes.
func TestCheckPassesWhenEveryExpectationIsAccountedFor(t *testing.T) {
	c := loadTestCatalog(t)
	st := &c.Scenarios[0].Spec.Steps[0]
	st.Expect = slices.DeleteFunc(st.Expect, func(e catalog.Expectation) bool { return e.ID == "MUT-BYP-01" })
	res, err := Check(context.Background(), c, Options{Backend: sim.New()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Counts[NotDiscriminating] != 0 {
		t.Errorf("OK() %v, counts %v: %s", res.OK(), res.Counts, res.Verdict())
	}
}
