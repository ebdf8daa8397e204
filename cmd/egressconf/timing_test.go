package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTimingOfASimRun: a real offline run records its breakdown, and `timing` prints it with a
// row per group and the median apply-to-converged.
func TestTimingOfASimRun(t *testing.T) {
	dir := t.TempDir()
	if _, err := capture(t, func() error {
		return execute("run", "--backend", "sim", "--group", "G1", "--reports", dir, "--run-id", "t1")
	}); err != nil {
		if _, ok := err.(exitError); !ok { // a subset exits non-zero by design; anything else is a failure
			t.Fatal(err)
		}
	}
	out, err := capture(t, func() error { return execute("timing", filepath.Join(dir, "t1")) })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"wall time (start to report)", "    convergence", "median apply-to-converged (4 steps)", "group G1"} {
		if !strings.Contains(out, w) {
			t.Errorf("timing lacks %q:\n%s", w, out)
		}
	}
}

// TestTimingOfAnOldRunNamesIt: a results.json without a timing breakdown is an error naming it.
func TestTimingOfAnOldRunNamesIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(p, []byte(`{"id":"old","results":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := capture(t, func() error { return execute("timing", p) })
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no timing") {
		t.Fatalf("%v", err)
	}
}
