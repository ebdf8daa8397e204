package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMutateFlags(t *testing.T) {
	f, err := parseMutateFlags([]string{"--catalog", "a", "--group", "G1,G2", "--run-id", "r1"})
	if err != nil || strings.Join(f.dirs, ",") != "a" || strings.Join(f.groups, ",") != "G1,G2" || f.runID != "r1" || f.backend != "sim" {
		t.Errorf("flags %+v, err %v", f, err)
	}
	for _, args := range [][]string{{"--backend", "kind"}, {"extra"}, {"--run-id", "../x"}, {"--nope"}} {
		var ue usageError
		if _, err := parseMutateFlags(args); !errors.As(err, &ue) {
			t.Errorf("%q: error %v, want a usage error", args, err)
		}
	}
}

// TestMutateCommand runs the command on pkg/mutate's test catalog, which has one expectation that
// is not discriminating: the command must say so last, write both reports and exit 1.
func TestMutateCommand(t *testing.T) {
	reports := t.TempDir()
	out, err := command("mutate", "--catalog", "../../pkg/mutate/testdata/catalog", "--reports", reports, "--run-id", "m1").CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "MUTATION CHECK FAILED") || !strings.Contains(last, "not discriminating: MUT-BYP-01") {
		t.Errorf("last line %q", last)
	}
	for _, f := range []string{"mutate.md", "mutate.json"} {
		if _, err := os.Stat(filepath.Join(reports, "m1", f)); err != nil {
			t.Error(err)
		}
	}
}
