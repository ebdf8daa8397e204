package live

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
)

// LabelNetworkPolicySelfTest marks every object of the NetworkPolicy self-test.
const LabelNetworkPolicySelfTest = "egressconf.io/netpol-self-test"

// checkNetworkPolicy runs the self-test when the cluster is believed to enforce NetworkPolicy, and
// withdraws the capability, with the self-test's reason, when the policy did not block. alongside
// ends its phase's name when it runs together with other phases (report.PhaseBucket).
func (b *Backend) checkNetworkPolicy(ctx context.Context, alongside string) error {
	b.mu.Lock()
	has := b.info.Capabilities[backend.CapNetworkPolicy]
	b.mu.Unlock()
	if !has {
		return nil
	}
	var why, how string
	err := b.phase("NetworkPolicy self-test (a deny-all egress policy must block)"+alongside, func() (err error) {
		why, how, err = b.netpolSelfTest(ctx)
		return err
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if why != "" {
		fmt.Fprintf(b.o.Progress, "   %s; the NetworkPolicy expectations are skipped\n", why)
		b.info.Capabilities[backend.CapNetworkPolicy] = false
		if b.info.CapabilityReasons == nil {
			b.info.CapabilityReasons = map[string]string{}
		}
		b.info.CapabilityReasons[backend.CapNetworkPolicy] = why
		b.info.NetworkPolicy += "; " + why
		return nil
	}
	b.info.NetworkPolicy += "; self-test: a deny-all egress policy was proven to block, the enforcer " + how
	return nil
}

// netpolSelfTestNamespace is the self-test's namespace for a run.
func netpolSelfTestNamespace(runID string) string {
	ns := "egressconf-netpol-" + strings.ToLower(runID)
	if len(ns) > 63 {
		ns = ns[:63]
	}
	return strings.TrimRight(ns, "-.")
}

// netpolSelfTest proves that the cluster enforces NetworkPolicy before any expectation relies on
// it: in a namespace of its own (no sidecars), a curl pod reaches an nginx pod by IP, then an
// egress policy that denies everything is applied to the curl pod, and the same request must
// fail to connect, several times in a row: timed out (curl exit 28: the enforcer drops, as
// Calico and Cilium do) or refused (exit 7: the enforcer rejects, as kube-router's firewall does;
// the same request was answered just before, so nothing else refuses it); how says which. It
// returns why "" when the policy was proven to block, else why
// not (the NetworkPolicy expectations are then skipped with that reason); an error is a
// self-test that could not run at all. Everything it creates carries the run's labels and
// LabelNetworkPolicySelfTest, and is deleted before it returns.
func (b *Backend) netpolSelfTest(ctx context.Context) (why, how string, err error) {
	ns := netpolSelfTestNamespace(b.o.RunID)
	labels := b.labels()
	labels[LabelNetworkPolicySelfTest] = "true"
	o := fixtures.Options{CurlImage: b.o.CurlImage, NginxImage: b.o.NginxImage}
	if o.CurlImage == "" {
		o.CurlImage = fixtures.DefaultCurlImage
	}
	if o.NginxImage == "" {
		o.NginxImage = fixtures.DefaultNginxImage
	}
	nsLabels := map[string]string{"istio-injection": "disabled"}
	for k, v := range labels {
		nsLabels[k] = v
	}
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: nsLabels},
	}, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return "", "", fmt.Errorf("namespace %s exists already (a previous run with run ID %s?): not touching it", ns, b.o.RunID)
		}
		return "", "", fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.o.Timeouts.Teardown)
		defer cancel()
		derr := b.cs.CoreV1().Namespaces().Delete(cctx, ns, metav1.DeleteOptions{})
		if derr == nil || apierrors.IsNotFound(derr) {
			derr = b.waitNamespacesGone(cctx, []string{ns})
		}
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting the self-test's namespace %s: %w", ns, derr))
		}
	}()

	zero := int64(0)
	pod := func(name, image string, cmd []string) *corev1.Pod {
		pl := map[string]string{"app": name, "sidecar.istio.io/inject": "false"}
		for k, v := range labels {
			pl[k] = v
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: pl,
				Annotations: map[string]string{"sidecar.istio.io/inject": "false"}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: &zero,
				Containers: []corev1.Container{{Name: name, Image: image, Command: cmd,
					ImagePullPolicy: corev1.PullIfNotPresent}},
			},
		}
	}
	for _, p := range []*corev1.Pod{pod("server", o.NginxImage, nil), pod("client", o.CurlImage, []string{"/bin/sleep", "infinity"})} {
		if _, err := b.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return "", "", fmt.Errorf("pod %s/%s: %w", ns, p.Name, err)
		}
	}
	var serverIP string
	if err := b.poll(ctx, b.o.Timeouts.Setup, func(ctx context.Context) (bool, error) {
		for _, n := range []string{"server", "client"} {
			p, err := b.cs.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !podReady(p) {
				return false, nil
			}
			if n == "server" {
				serverIP = p.Status.PodIP
			}
		}
		return serverIP != "", nil
	}); err != nil {
		return "", "", fmt.Errorf("self-test pods in %s not ready: %w", ns, err)
	}
	url := "http://" + serverIP + "/"
	maxTime := b.o.Timeouts.ProbeMax
	if maxTime <= 0 || maxTime > 5*time.Second {
		maxTime = 5 * time.Second
	}
	// curl's exit code: 0 reached, 28 timed out (what a dropping policy gives), other: refused, ...
	curl := func(ctx context.Context) (int, error) {
		res, err := b.exec(ctx, ns, "client", "client", []string{"curl", "-s", "-o", "/dev/null",
			"--max-time", fmt.Sprintf("%.0f", maxTime.Seconds()), url})
		return res.ExitCode, err
	}

	// Before the policy the request must get through (the first one after a pod is ready can
	// fail: poll), or a later timeout would prove nothing.
	var last int
	if err := b.poll(ctx, b.o.Timeouts.Eventually, func(ctx context.Context) (bool, error) {
		code, err := curl(ctx)
		last = code
		return err == nil && code == 0, err
	}); err != nil {
		return fmt.Sprintf("NetworkPolicy self-test: the client pod could not reach the server pod %s even without a policy (curl exit %d): %v", url, last, err), "", nil
	}

	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-all-egress", Namespace: ns, Labels: labels},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	if _, err := b.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		return "", "", fmt.Errorf("NetworkPolicy %s/%s: %w", ns, policy.Name, err)
	}
	// The enforcer applies a policy asynchronously: poll until the request times out, then it
	// must keep timing out (three in a row), as a negative expectation must hold.
	const inARow = 3
	blocked := 0
	start := time.Now()
	if err := b.poll(ctx, b.o.Timeouts.Converge, func(ctx context.Context) (bool, error) {
		code, err := curl(ctx)
		if err != nil {
			return false, err
		}
		if code != last {
			blocked = 0
		}
		last = code
		if code == 28 || code == 7 {
			blocked++
		} else {
			blocked = 0
		}
		return blocked >= inARow, nil
	}); err != nil {
		return fmt.Sprintf("NetworkPolicy self-test: a deny-all egress policy did not block the client pod's request to %s within %s (last curl exit %d, %d failed connections in a row; %v): the cluster does not enforce NetworkPolicy", url, b.o.Timeouts.Converge, last, blocked, err), "", nil
	}
	how = "drops (curl exit 28, timeout)"
	if last == 7 {
		how = "rejects (curl exit 7, refused)"
	}
	fmt.Fprintf(b.o.Progress, "   self-test: the deny-all egress policy blocks %s: the enforcer %s, %d times in a row, %s after the policy was created\n", url, how, inARow, since(start))
	return "", how, nil
}
