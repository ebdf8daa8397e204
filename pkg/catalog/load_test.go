package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scenarioYAML is the smallest scenario the loader reads (validation is not the loader's job).
const scenarioYAML = "apiVersion: egressconf.io/v1alpha1\nkind: Scenario\nmetadata: {name: s, group: T1}\n"

// TestLoadRefusesWhatItWouldSilentlyMiss: a symbolic link to a directory (which a directory walk
// does not follow), a link that loops, a dangling link and a directory without scenarios are each
// an error naming the path; a linked scenario.yaml file is read through its link.
func TestLoadRefusesWhatItWouldSilentlyMiss(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(target, at string) {
		if err := os.Symlink(target, filepath.Join(root, at)); err != nil {
			t.Fatal(err)
		}
	}
	real := mk("real")
	if err := os.WriteFile(filepath.Join(real, ScenarioFile), []byte(scenarioYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	mk("linkeddir")
	link("../real", "linkeddir/g1")
	mk("loop")
	link(ScenarioFile, "loop/"+ScenarioFile)
	mk("dangling")
	link("/nonexistent/egressconf", "dangling/x")
	empty := mk("empty")
	mk("linkedfile")
	link("../real/"+ScenarioFile, "linkedfile/"+ScenarioFile)

	for _, c := range []struct{ dir, want string }{
		{"linkeddir", "linkeddir/g1 is a symbolic link to a directory"},
		{"loop", "loop/scenario.yaml: a symbolic link that loops"},
		{"dangling", "dangling/x: a symbolic link whose target cannot be read"},
		{"empty", "catalog " + empty + ": no scenario.yaml"},
	} {
		_, err := LoadPaths(filepath.Join(root, c.dir))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.dir, err, c.want)
		}
	}
	// "." is named by its absolute path: a message saying "catalog ." tells nobody where to look.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(empty); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPaths("."); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf(`LoadPaths("."): %v, want the directory's absolute path %s`, err, empty)
	}
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	c, err := LoadPaths(filepath.Join(root, "linkedfile"))
	if err != nil || len(c.Scenarios) != 1 || c.Scenarios[0].Metadata.Name != "s" {
		t.Fatalf("a linked scenario.yaml: %v", err)
	}
}
