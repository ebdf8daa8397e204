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

// TestMutateRefusesBadInput: a catalog directory that does not exist and an unknown flag are
// errors naming them, and nothing is written.
func TestMutateRefusesBadInput(t *testing.T) {
	reports := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-catalog")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--catalog", missing}, 1, "--catalog: stat " + missing + ": no such file or directory"},
		{[]string{"--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"--group", "G99"}, 2, `unknown group "G99"`},
	} {
		args := append([]string{"mutate", "--reports", reports}, c.args...)
		out, err := command(args...).CombinedOutput()
		if code := exitCode(err); code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
	if entries, _ := os.ReadDir(reports); len(entries) != 0 {
		t.Errorf("reports written for bad input: %v", entries)
	}
}
