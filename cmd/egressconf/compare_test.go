package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompareThreeOraclesClassifies: three runs (test data: hand-written results of the three
// oracles, not a real differential) are compared per ID, each difference printed with its class,
// documentation drift (every run agrees and fails) listed without counting as a difference, and
// --html writes the page.
func TestCompareThreeOraclesClassifies(t *testing.T) {
	dir := t.TempDir()
	write := func(name, oracle, x, y string) string {
		p := filepath.Join(dir, name+".json")
		data := `{"id":"` + name + `","backend":{"Name":"` + name + `","Oracle":"` + oracle + `"},"results":[` +
			`{"id":"DENYNS-03","group":"G1","verdict":"pass","observed":"403","expected":"403"},` +
			`{"id":"DENYNS-04","group":"G1",` + x + `,"expected":"301"},` +
			`{"id":"DENYNS-01","group":"G1",` + y + `,"expected":"301"}]}`
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sim := write("sim", "predicted-offline-control-plane", `"verdict":"pass","observed":"301"`, `"verdict":"fail","observed":"200"`)
	xds := write("xds", "predicted-live-control-plane", `"verdict":"pass","observed":"301"`, `"verdict":"fail","observed":"200"`)
	curl := write("curl", "observed-live-data-plane", `"verdict":"fail","observed":"reset (exit 56)"`, `"verdict":"fail","observed":"200"`)
	page := filepath.Join(dir, "diff.html")
	out, err := capture(t, func() error { return cmdCompare([]string{"--html", page, sim, xds, curl}) })
	if err == nil {
		t.Fatalf("a difference must exit 1: %q", out)
	}
	for _, w := range []string{
		`DENYNS-04    sim (predicted-offline-control-plane): pass "301" | xds (predicted-live-control-plane): pass "301" | curl (observed-live-data-plane): fail "reset (exit 56)"`,
		`data-plane divergence: observed FAIL "reset (exit 56)", the live istiod's configuration predicts PASS "301"`,
		"DENYNS-01    agree, and fail",
		`documentation drift: observed and predicted agree (FAIL "200"), the document expects "301"`,
		"3 expectations compared, 1 differ, 0 not compared",
		"classes: documentation drift 1, data-plane divergence 1",
		"wrote " + page,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	data, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(data), `data-classes="data-plane-divergence"`) {
		t.Fatalf("the page: %v", err)
	}
}

// TestCompareOneRunIsUsage: compare needs two runs or more.
func TestCompareOneRunIsUsage(t *testing.T) {
	_, err := capture(t, func() error { return cmdCompare([]string{"a.json"}) })
	if _, ok := err.(usageError); !ok {
		t.Fatalf("%v", err)
	}
}

// TestCompareHTMLUnwritable: an --html path that cannot be written is an error naming it.
func TestCompareHTMLUnwritable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	if err := os.WriteFile(p, []byte(`{"id":"a","results":[{"id":"DENYNS-01","verdict":"pass","observed":"301"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "no-such-dir", "diff.html")
	_, err := capture(t, func() error { return cmdCompare([]string{"--html", bad, p, p}) })
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("%v", err)
	}
}

// TestCompareSimAndDualRun: a --probe curl,xds run holds two oracles, so with a sim run every
// class of the three oracles is told apart without a separate xds run (test data, hand-written).
func TestCompareSimAndDualRun(t *testing.T) {
	dir := t.TempDir()
	sim := filepath.Join(dir, "ci-sim.json")
	simData := `{"id":"ci-sim","backend":{"Name":"sim","Oracle":"predicted-offline-control-plane"},"results":[` +
		`{"id":"SAME","group":"G1","verdict":"pass","observed":"403","expected":"403"},` +
		`{"id":"DATA","group":"G1","verdict":"pass","observed":"403","expected":"403"},` +
		`{"id":"CTRL","group":"G1","verdict":"pass","observed":"403","expected":"403"},` +
		`{"id":"DRIFT","group":"G1","verdict":"fail","observed":"200","expected":"403"},` +
		`{"id":"ERR","group":"G1","verdict":"pass","observed":"403","expected":"403"}]}`
	res := func(id, v, o, pv, po string) string {
		return `{"id":"` + id + `","group":"G1","expected":"403","verdict":"` + v + `","observed":"` + o + `","oracle":"observed-live-data-plane",` +
			`"predictions":[{"oracle":"predicted-live-control-plane","verdict":"` + pv + `","observed":"` + po + `","message":"m"}]}`
	}
	dual := filepath.Join(dir, "e2e")
	if err := os.MkdirAll(dual, 0o755); err != nil {
		t.Fatal(err)
	}
	dualData := `{"id":"e2e-kind-catalog","backend":{"Name":"kind","Oracle":"observed-live-data-plane"},` +
		`"predictions":[{"oracle":"predicted-live-control-plane","backend":"kind"}],"results":[` +
		res("SAME", "pass", "403", "pass", "403") + "," + res("DATA", "fail", "502", "pass", "403") + "," +
		res("CTRL", "pass", "403", "fail", "200") + "," + res("DRIFT", "fail", "200", "fail", "200") + "," +
		res("ERR", "pass", "403", "error", "prediction did not run") + `]}`
	for p, d := range map[string]string{sim: simData, filepath.Join(dual, "results.json"): dualData} {
		if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := capture(t, func() error { return cmdCompare([]string{sim, dual}) })
	if err == nil {
		t.Fatalf("differences must exit 1:\n%s", out)
	}
	for _, w := range []string{
		`data-plane divergence: observed FAIL "502", the live istiod's configuration predicts PASS "403"`,
		`control-plane difference: offline prediction PASS "403", live prediction FAIL "200"`,
		`DRIFT        agree, and fail`,
		`documentation drift: observed and predicted agree (FAIL "200")`,
		`unclassified: e2e-kind-catalog[predicted-live-control-plane]: ERROR (m)`,
		"ci-sim: predicted-offline-control-plane; e2e-kind-catalog: observed-live-data-plane; e2e-kind-catalog[predicted-live-control-plane]: predicted-live-control-plane",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "SAME ") {
		t.Errorf("SAME agrees everywhere and is listed:\n%s", out)
	}
	// The dual run alone: its observation against its prediction.
	out, err = capture(t, func() error { return cmdCompare([]string{dual}) })
	if err == nil || !strings.Contains(out, `data-plane divergence: observed FAIL "502"`) || strings.Contains(out, "control-plane difference") {
		t.Errorf("the dual run alone: %v\n%s", err, out)
	}
	// A run of one oracle alone is bad usage, naming it.
	_, err = capture(t, func() error { return cmdCompare([]string{sim}) })
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), sim+": it holds one oracle") {
		t.Errorf("one sim run alone: %v", err)
	}
}
