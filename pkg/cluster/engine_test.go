package cluster

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Without an engine, Create fails at once with one message saying what is missing and what to run
// instead, not kind's "failed to list clusters". These run for real: with the docker CLI pointed at a
// socket nobody serves, and with no docker command at all.
func TestCreateWithoutEngineSaysWhatToDo(t *testing.T) {
	check := func(t *testing.T, wantReason string) {
		t.Helper()
		_, err := Create(context.Background(), "egressconf-no-engine")
		var ee *EngineError
		if !errors.As(err, &ee) {
			t.Fatalf("Create without an engine: %v, want an EngineError", err)
		}
		for _, w := range []string{"kind backend", wantReason, "make sim", "--backend existing"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q:\n%v", w, err)
			}
		}
		if strings.Contains(err.Error(), "list clusters") {
			t.Errorf("error is kind's listing failure:\n%v", err)
		}
	}
	t.Run("unreachable engine", func(t *testing.T) {
		if _, err := exec.LookPath("docker"); err != nil {
			t.Skip("no docker CLI on this machine: the no-command case covers it")
		}
		t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
		t.Setenv("DOCKER_CONTEXT", "")
		check(t, "the Docker engine is not reachable")
	})
	t.Run("no docker command", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		check(t, "no `docker` command in PATH")
	})
}

// A new cluster is refused, naming the directory and what to do, where the engine's data root has
// less free space than a cluster needs; a root this machine cannot measure passes.
func TestCheckFreeDisk(t *testing.T) {
	dir := t.TempDir()
	if err := checkFreeDisk(dir, 1); err != nil {
		t.Errorf("1 byte needed: %v", err)
	}
	err := checkFreeDisk(dir, 1<<62)
	var ee *EngineError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "docker system prune") {
		t.Errorf("4 EiB needed: %v, want an EngineError naming %s", err, dir)
	}
	if err := checkFreeDisk(filepath.Join(dir, "not-here"), 1<<62); err != nil {
		t.Errorf("a root not on this machine: %v", err)
	}
}
