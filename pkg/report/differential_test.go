package report

import (
	"slices"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend"
)

// Test data: runs of the three oracles built by hand. No real-Envoy differential was produced here;
// these fixtures only exercise the rules.
func oracleRun(id string, o backend.Oracle, istio string, results ...Result) *Run {
	name := map[backend.Oracle]string{backend.OracleOffline: "sim", backend.OracleLiveControlPlane: "kind", backend.OracleLiveDataPlane: "kind"}[o]
	for i := range results {
		results[i].Group, results[i].Expected = "G1", "403"
		results[i].Oracle = o
	}
	return &Run{ID: id, Backend: backend.Info{Name: name, Oracle: o, IstioVersion: istio}, Results: results}
}

func dres(id string, v Verdict, observed string) Result {
	return Result{ID: id, Verdict: v, Observed: observed}
}

const (
	obs  = backend.OracleLiveDataPlane
	live = backend.OracleLiveControlPlane
	off  = backend.OracleOffline
)

func TestDifferentialClasses(t *testing.T) {
	outOfModel := Result{ID: "X", Verdict: Skip, Observed: "out of model", Message: "probe: out of model: redirect routes on gw"}
	capSkip := Result{ID: "X", Verdict: Skip, Capability: "networkpolicy", Message: "needs networkpolicy"}
	cases := []struct {
		name    string
		runs    []*Run
		want    []Class
		differs bool
		reason  string // a substring of the reasons
	}{
		{
			name: "all pass alike: no class",
			runs: []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("curl", obs, "1.31", dres("X", Pass, "403"))},
		},
		{
			name:   "documentation drift: observed and both predictions fail the same way",
			runs:   []*Run{oracleRun("sim", off, "1.31", dres("X", Fail, "200")), oracleRun("xds", live, "1.31", dres("X", Fail, "200")), oracleRun("curl", obs, "1.31", dres("X", Fail, "200"))},
			want:   []Class{ClassDocDrift},
			reason: `observed and predicted agree (FAIL "200"), the document expects "403"`,
		},
		{
			name: "documentation drift: observed and offline alone",
			runs: []*Run{oracleRun("sim", off, "1.31", dres("X", Fail, "200")), oracleRun("curl", obs, "1.31", dres("X", Fail, "200"))},
			want: []Class{ClassDocDrift},
		},
		{
			name:    "data-plane divergence: observed differs from the live prediction, which the offline one shares",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("xds", live, "1.31", dres("X", Pass, "403")), oracleRun("curl", obs, "1.31", dres("X", Fail, "502"))},
			want:    []Class{ClassDataPlane},
			differs: true,
			reason:  `observed FAIL "502", the live istiod's configuration predicts PASS "403"`,
		},
		{
			name:    "control-plane difference: offline and live predictions differ",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("xds", live, "1.30", dres("X", Fail, "200"))},
			want:    []Class{ClassControlPlane},
			differs: true,
			reason:  `offline prediction PASS "403", live prediction FAIL "200"`,
		},
		{
			name:    "control-plane difference and data-plane divergence at once",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("xds", live, "1.31", dres("X", Fail, "200")), oracleRun("curl", obs, "1.31", dres("X", Pass, "403"))},
			want:    []Class{ClassDataPlane, ClassControlPlane},
			differs: true,
		},
		{
			name:    "model gap: observed differs from offline, no live prediction",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("curl", obs, "1.31", dres("X", Fail, "reset (exit 56)"))},
			want:    []Class{ClassModelGap},
			differs: true,
			reason:  "no live prediction",
		},
		{
			name:    "model gap: the Envoy model reported out of model",
			runs:    []*Run{oracleRun("sim", off, "1.31", outOfModel), oracleRun("curl", obs, "1.31", dres("X", Pass, "403"))},
			want:    []Class{ClassModelGap},
			differs: true,
			reason:  "the Envoy model does not cover it",
		},
		{
			name:    "differs: two runs of the same oracle, two Istio versions",
			runs:    []*Run{oracleRun("sim-130", off, "1.30", dres("X", Pass, "403")), oracleRun("sim-131", off, "1.31", dres("X", Fail, "502"))},
			want:    []Class{ClassDiffers},
			differs: true,
			reason:  `outcome observed changed (predicted-offline-control-plane): sim-130 PASS "403" → sim-131 FAIL "502"; between the runs: Istio 1.30 → 1.31`,
		},
		{
			name: "not compared: offline lacks the capability, the cluster passed",
			runs: []*Run{oracleRun("sim", off, "1.31", capSkip), oracleRun("curl", obs, "1.31", dres("X", Pass, "refused (exit 7)"))},
			want: []Class{ClassNotCompared},
		},
		{
			name:    "unclassified: an error observed nothing",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("curl", obs, "1.31", Result{ID: "X", Verdict: Error, Observed: "probe did not run", Message: "exec failed"})},
			want:    []Class{ClassUnclassified},
			differs: true,
			reason:  "curl: ERROR (exec failed)",
		},
		{
			name:    "unclassified: a result missing from a run",
			runs:    []*Run{oracleRun("sim", off, "1.31", dres("X", Pass, "403")), oracleRun("curl", obs, "1.31", dres("Y", Pass, "403"))},
			want:    []Class{ClassUnclassified},
			differs: true,
			reason:  "no result in curl",
		},
		{
			name:   "unclassified: two predictions fail alike, nothing observed to call it drift",
			runs:   []*Run{oracleRun("sim", off, "1.31", dres("X", Fail, "200")), oracleRun("xds", live, "1.31", dres("X", Fail, "200"))},
			want:   []Class{ClassUnclassified},
			reason: "documentation drift needs an observation",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDifferential(tc.runs...)
			var row *DiffRow
			for i := range d.Rows {
				if d.Rows[i].ID == "X" {
					row = &d.Rows[i]
				}
			}
			if row == nil {
				t.Fatalf("no row X in %+v", d.Rows)
			}
			if !slices.Equal(row.Classes, tc.want) {
				t.Errorf("classes %v, want %v (reasons %q)", row.Classes, tc.want, row.Reasons)
			}
			if row.Differs != tc.differs {
				t.Errorf("differs %v, want %v", row.Differs, tc.differs)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(row.Reasons, "\n"), tc.reason) {
				t.Errorf("reasons %q lack %q", row.Reasons, tc.reason)
			}
			for _, c := range row.Classes {
				found := false
				for _, why := range row.Reasons {
					if strings.HasPrefix(why, c.Title()+": ") {
						found = true
					}
				}
				if !found {
					t.Errorf("class %s has no reason in %q", c, row.Reasons)
				}
			}
		})
	}
}

// TestDifferentialOneRun: one run gives the table and no classes, whatever failed.
func TestDifferentialOneRun(t *testing.T) {
	d := NewDifferential(sampleRun())
	if len(d.Rows) != len(sampleRun().Results) {
		t.Fatalf("%d rows", len(d.Rows))
	}
	for _, r := range d.Rows {
		if len(r.Classes) != 0 || r.Differs {
			t.Errorf("%s: %v differs=%v", r.ID, r.Classes, r.Differs)
		}
	}
	if g := d.Groups(); !slices.Equal(g, []string{"G1", "G2"}) {
		t.Errorf("groups %v", g)
	}
}
