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
