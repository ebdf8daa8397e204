package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend/live/envoyadmin"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// ProxyContainer is the name of Istio's proxy container, in sidecars and gateways alike.
const ProxyContainer = "istio-proxy"

// execResult is one command run in a container.
type execResult struct {
	Stdout, Stderr string
	// ExitCode is the command's exit code; the command ran (err nil) even when it is not 0.
	ExitCode int
}

// ExecError is a command that could not be run in a container at all (no such container, exec
// refused, stream broken): the caller learns nothing about what the command would have done.
type ExecError struct {
	Namespace, Pod, Container string
	Command                   []string
	Err                       error
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("exec %q in %s/%s container %s: %v", strings.Join(e.Command, " "), e.Namespace, e.Pod, e.Container, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// exec runs cmd in the container through the API server (WebSocket, falling back to SPDY) and
// returns its output and exit code. A non-zero exit is not an error; failing to run is an
// *ExecError.
func (b *Backend) exec(ctx context.Context, ns, pod, container string, cmd []string) (execResult, error) {
	fail := func(err error) (execResult, error) {
		return execResult{}, &ExecError{Namespace: ns, Pod: pod, Container: container, Command: cmd, Err: err}
	}
	req := b.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(b.cfg, "POST", req.URL())
	if err != nil {
		return fail(err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(b.cfg, "GET", req.URL().String())
	if err != nil {
		return fail(err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fail(err)
	}
	var out, errb bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	res := execResult{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		var ce utilexec.CodeExitError
		if errors.As(err, &ce) {
			res.ExitCode = ce.Code
			return res, nil
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("%w (%v)", ctx.Err(), err))
		}
		if s := strings.TrimSpace(errb.String()); s != "" {
			err = fmt.Errorf("%w; stderr: %s", err, clip(s, 300))
		}
		return fail(err)
	}
	return res, nil
}

// workloadPod finds the workload's running, ready pod of this run (the newest when several).
func (b *Backend) workloadPod(ctx context.Context, w catalog.Workload) (*corev1.Pod, error) {
	sel := fmt.Sprintf("app=%s,%s=%s", w.Name, fixtures.LabelRun, b.o.RunID)
	pods, err := b.cs.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("pods of %s: %w", w.Ref(), err)
	}
	var best *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(p) {
			continue
		}
		if best == nil || p.CreationTimestamp.After(best.CreationTimestamp.Time) {
			best = p
		}
	}
	if best == nil {
		return nil, fmt.Errorf("workload %s has no running, ready pod (selector %s, %d pods)", w.Ref(), sel, len(pods.Items))
	}
	return best, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hasContainer reports whether the pod has the container (sidecars are native sidecars, i.e. init
// containers, on recent Istio and Kubernetes; regular containers otherwise).
func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Probe implements backend.Backend: curl in the workload's app container, with the arguments of
// probe.Args, parsed by probe.ParseOutput. Anything that keeps curl from running as built is an
// error.
func (b *Backend) Probe(ctx context.Context, from catalog.Workload, req *probe.Request) (_ outcome.Observed, err error) {
	defer explain(&err)
	if from.Gateway {
		return outcome.Observed{}, fmt.Errorf("%s is a gateway: probes run from workloads", from.Ref())
	}
	if sc := b.sc; sc == nil || sc.workloads[from.Ref()] == nil {
		return outcome.Observed{}, fmt.Errorf("workload %s is not deployed", from.Ref())
	}
	if b.predictOnly() {
		return b.xdsProbe(ctx, from, req)
	}
	pod, err := b.workloadPod(ctx, from)
	if err != nil {
		return outcome.Observed{}, err
	}
	t := b.o.Timeouts
	marker, opts := b.marks.next(pod, req, probe.Options{ConnectTimeout: t.ProbeConnect, MaxTime: t.ProbeMax})
	cmd := append([]string{"curl"}, probe.Args(req, opts)...)
	// curl ends itself at --max-time (the document's own if it gives one); the bound here only
	// catches a stuck exec stream.
	ectx, cancel := context.WithTimeout(ctx, max(t.ProbeMax, req.MaxTime)+30*time.Second)
	defer cancel()
	res, err := b.exec(ectx, pod.Namespace, pod.Name, fixtures.AppContainer(from), cmd)
	if err != nil {
		return outcome.Observed{}, fmt.Errorf("probe did not run: %w", err)
	}
	if res.ExitCode == 126 || res.ExitCode == 127 {
		return outcome.Observed{}, fmt.Errorf("probe did not run: curl could not be executed in %s/%s container %s (exit %d): %s",
			pod.Namespace, pod.Name, fixtures.AppContainer(from), res.ExitCode, clip(strings.TrimSpace(res.Stderr+res.Stdout), 300))
	}
	obs, err := probe.ParseOutput(res.Stdout, res.Stderr, res.ExitCode)
	if err != nil {
		return outcome.Observed{}, fmt.Errorf("probe from %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	obs.Probe = marker
	return obs, nil
}

// envoyState asks the pod's Envoy for its server_info through pilot-agent. It returns "" when
// Envoy answers with a state, else the reason no mesh outcome can be observed through this proxy.
func (b *Backend) envoyState(ctx context.Context, p *corev1.Pod) (string, error) {
	if !hasContainer(p, ProxyContainer) {
		return fmt.Sprintf("pod %s/%s has no %s container", p.Namespace, p.Name, ProxyContainer), nil
	}
	si, err := envoyadmin.ReadServerInfo(ctx, b.adminGet(p.Namespace, p.Name))
	if err != nil {
		var ee *ExecError
		if errors.As(err, &ee) {
			return "", err
		}
		return fmt.Sprintf("the %s container of pod %s/%s runs no Envoy (%v): it intercepts and proxies nothing, so no mesh outcome can be observed through it",
			ProxyContainer, p.Namespace, p.Name, err), nil
	}
	b.noteEnvoyVersion(si)
	return "", nil
}

// noteEnvoyVersion records the versions of Envoy the run's proxies reported.
func (b *Backend) noteEnvoyVersion(si envoyadmin.ServerInfo) {
	v := "envoy " + si.ReleaseVersion() + " (" + si.Version + ")"
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.info.Proxy == "" {
		b.info.Proxy = v
	} else if !strings.Contains(b.info.Proxy, v) {
		b.info.Proxy += "; " + v
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
