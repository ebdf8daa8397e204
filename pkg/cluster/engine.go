package cluster

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
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

// MinFreeDisk is the free space Create wants where the Docker engine keeps its data: the node
// image (about 1 GiB unpacked), the images loaded into the node, and room for the pods' logs.
const MinFreeDisk = 4 << 30

// CheckEngine verifies that the docker command exists and its engine answers `docker info`.
func CheckEngine(ctx context.Context) error {
	_, err := engineRoot(ctx)
	return err
}

// engineRoot checks the engine as CheckEngine does and returns its data root (DockerRootDir).
func engineRoot(ctx context.Context) (string, error) {
	path, err := exec.LookPath("docker")
	if err != nil {
		return "", &EngineError{Reason: "no `docker` command in PATH"}
	}
	// docker info waits on an unreachable TCP engine for a long time; a live engine answers at once.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "info", "--format", "{{.ServerVersion}}|{{.DockerRootDir}}").CombinedOutput()
	text := strings.TrimSpace(string(out))
	version, root, _ := strings.Cut(text, "|")
	if err != nil || version == "" {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			text = strings.TrimSpace(text + "\n(no answer in 20s)")
		}
		return "", &EngineError{Reason: "the Docker engine is not reachable (`docker info` failed)", Output: text}
	}
	return root, nil
}

// checkFreeDisk refuses a data root with less than need bytes free. A root that is not on this
// machine (a remote engine) cannot be measured here and passes.
func checkFreeDisk(root string, need uint64) error {
	var st syscall.Statfs_t
	if root == "" || syscall.Statfs(root, &st) != nil {
		return nil
	}
	if free := st.Bavail * uint64(st.Bsize); free < need {
		return &EngineError{Reason: fmt.Sprintf("only %.1f GiB free in %s, the Docker engine's data root; a kind cluster with Istio needs about %.0f GiB: free some space (`docker system prune`)",
			float64(free)/(1<<30), root, float64(need)/(1<<30))}
	}
	return nil
}
