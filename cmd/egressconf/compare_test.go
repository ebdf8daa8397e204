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
