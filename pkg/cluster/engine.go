package cluster

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"
)

// EngineError says that the container engine kind needs is missing or unreachable, with what to
// do instead. It comes before anything else, so a user does not meet it as a failed `docker ps`
// deep inside kind's cluster listing.
type EngineError struct {
	// Reason is what is missing: the docker command, or an engine behind it.
	Reason string
	// Output is the failing command's output (trimmed), if it ran.
	Output string
}

func (e *EngineError) Error() string {
	msg := "kind backend: " + e.Reason
	if e.Output != "" {
		msg += ":\n   " + strings.ReplaceAll(e.Output, "\n", "\n   ")
	}
	return msg + "\n   kind runs its nodes as Docker containers: start a Docker engine (`docker info` must" +
		" answer), or run without one: `make sim` (the offline backend) or `egressconf run --backend existing" +
		" --kubeconfig FILE` (a cluster you already have)"
}

// CheckEngine verifies that the docker command exists and its engine answers `docker info`.
func CheckEngine(ctx context.Context) error {
	path, err := exec.LookPath("docker")
	if err != nil {
		return &EngineError{Reason: "no `docker` command in PATH"}
	}
	// docker info waits on an unreachable TCP engine for a long time; a live engine answers at once.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil || text == "" {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			text = strings.TrimSpace(text + "\n(no answer in 20s)")
		}
		return &EngineError{Reason: "the Docker engine is not reachable (`docker info` failed)", Output: text}
	}
	return nil
}
