package live

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// gatewayState is what detect found for one fixture gateway.
type gatewayState struct {
	gw fixtures.Gateway
	// present: its Service exists and a ready pod carries its labels.
	present bool
	// missing says what is absent when !present.
	missing string
	// pods are its ready pods.
	pods []string
	// noEnvoy is why its logs cannot be read as a mesh outcome ("" when Envoy runs).
	noEnvoy string
}

// EnforcingCNI is a NetworkPolicy enforcer --network-policy auto recognises by its DaemonSet.
type EnforcingCNI struct {
	// Name is what the run records ("kindnet", "calico", ...).
	Name string
	// Namespace and DaemonSet locate its agent.
	Namespace, DaemonSet string
}

// NetworkPolicyCNIs are the enforcers --network-policy auto looks for, each by the DaemonSet of
// its node agent: kind's kindnet (it enforces NetworkPolicy since kind v0.24; an older kindnet
// does not, which the self-test then finds), Calico (manifest install in kube-system, operator
// install in calico-system; Canal is Calico's policy engine over flannel), Cilium, Antrea, Weave
// Net, and kube-router (also the firewall CI's kind cluster runs, internal/testmesh/kuberouter).
// A DaemonSet counts only with a ready pod; the self-test (netpolcheck.go) then proves that a
// policy blocks before any expectation relies on it.
var NetworkPolicyCNIs = []EnforcingCNI{
	{"kindnet", "kube-system", "kindnet"},
	{"calico", "kube-system", "calico-node"},
	{"calico", "calico-system", "calico-node"},
	{"canal", "kube-system", "canal"},
	{"cilium", "kube-system", "cilium"},
	{"antrea", "kube-system", "antrea-agent"},
	{"weave", "kube-system", "weave-net"},
	{"kube-router", "kube-system", "kube-router"},
}

// detect finds istiod and its version, the fixture gateways, and the cluster's capabilities.
func (b *Backend) detect(ctx context.Context) error {
	d, err := b.cs.AppsV1().Deployments(IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("istiod (Deployment %s/istiod): %w; install Istio first (--install-istio)", IstioNamespace, err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "discovery" {
			b.istiodImage = c.Image
		}
	}
	pods, err := b.istiodPods(ctx)
	if err != nil {
		return err
	}
	version := imageTag(b.istiodImage)
	if out, err := b.exec(ctx, IstioNamespace, pods[0].Name, "discovery", []string{"pilot-discovery", "version", "-s"}); err == nil && out.ExitCode == 0 {
		// "client version: 1.31-dev" (pilot-discovery prints its own version as the client's)
		v := strings.TrimSpace(out.Stdout)
		if i := strings.LastIndex(v, ":"); i >= 0 {
			v = strings.TrimSpace(v[i+1:])
		}
		if v != "" {
			version = v
		}
	}
	caps := map[string]bool{}
	enforced, netpol, err := b.detectNetworkPolicy(ctx)
	if err != nil {
		return err
	}
	caps[backend.CapNetworkPolicy] = enforced
	fmt.Fprintf(b.o.Progress, "   NetworkPolicy: %s\n", netpol)
	if _, err := b.resource(asmGVK); err == nil {
		caps[backend.CapASMEgressTrafficPolicy] = true
	}
	b.mu.Lock()
	b.info.IstioVersion = version
	b.info.MeshVersion = "istio " + version + " (istiod image " + b.istiodImage + ")"
	if b.o.IstioProfile != "" {
		b.info.MeshVersion += ", install profile " + b.o.IstioProfile
	}
	b.info.Capabilities = caps
	b.info.NetworkPolicy = netpol
	b.mu.Unlock()
	for _, name := range fixtures.GatewayNames() {
		g, err := b.detectGateway(ctx, fixtures.Gateways[name])
		if err != nil {
			return err
		}
		b.gateways[name] = g
	}
	return nil
}

func imageTag(image string) string {
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		return image[i+1:]
	}
	return "unknown"
}

// detectNetworkPolicy decides CapNetworkPolicy before the self-test: --network-policy yes|no as
// given, or auto: enforced when a known enforcer's agent is ready. how is what the run records
// (Info.NetworkPolicy): the flag, or the enforcers found, or what was looked for.
func (b *Backend) detectNetworkPolicy(ctx context.Context) (enforced bool, how string, err error) {
	if b.o.NetworkPolicy != nil {
		return *b.o.NetworkPolicy, map[bool]string{true: "--network-policy yes", false: "--network-policy no"}[*b.o.NetworkPolicy], nil
	}
	found, err := b.networkPolicyCNIs(ctx)
	if err != nil {
		return false, "", err
	}
	return len(found) > 0, describeCNIs(found), nil
}

// foundCNI is an enforcer whose DaemonSet has a ready pod.
type foundCNI struct {
	EnforcingCNI
	ready, desired int32
}

// networkPolicyCNIs finds the known enforcers with a ready agent, in NetworkPolicyCNIs' order. A
// namespace that does not exist is no error; a DaemonSet that cannot be read is (naming it).
func (b *Backend) networkPolicyCNIs(ctx context.Context) ([]foundCNI, error) {
	var found []foundCNI
	for _, c := range NetworkPolicyCNIs {
		d, err := b.cs.AppsV1().DaemonSets(c.Namespace).Get(ctx, c.DaemonSet, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--network-policy auto: DaemonSet %s/%s (%s): %w", c.Namespace, c.DaemonSet, c.Name, err)
		}
		if d.Status.NumberReady > 0 {
			found = append(found, foundCNI{c, d.Status.NumberReady, d.Status.DesiredNumberScheduled})
		}
	}
	return found, nil
}

// describeCNIs is what the run records about --network-policy auto: the enforcers found, each
// with its DaemonSet and readiness, or which DaemonSets were looked for.
func describeCNIs(found []foundCNI) string {
	if len(found) == 0 {
		var looked []string
		for _, c := range NetworkPolicyCNIs {
			looked = append(looked, c.Namespace+"/"+c.DaemonSet)
		}
		return "auto: no NetworkPolicy-enforcing CNI found (no DaemonSet with a ready pod among " + strings.Join(looked, ", ") + ")"
	}
	var parts []string
	for _, c := range found {
		parts = append(parts, fmt.Sprintf("%s (DaemonSet %s/%s, %d/%d ready)", c.Name, c.Namespace, c.DaemonSet, c.ready, c.desired))
	}
	return "auto: enforcing CNI " + strings.Join(parts, ", ")
}

// detectGateway checks the gateway's Service and ready pods (selected by its fixture labels), and
// whether Envoy runs in them.
func (b *Backend) detectGateway(ctx context.Context, g fixtures.Gateway) (*gatewayState, error) {
	st := &gatewayState{gw: g}
	if _, err := b.cs.CoreV1().Services(g.Namespace).Get(ctx, g.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		st.missing = fmt.Sprintf("no Service %s/%s", g.Namespace, g.Name)
		return st, nil
	} else if err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(g.Labels).String()
	pods, err := b.cs.CoreV1().Pods(g.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var ready []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
			ready = append(ready, p)
			st.pods = append(st.pods, p.Name)
		}
	}
	if len(ready) == 0 {
		st.missing = fmt.Sprintf("no ready pod labelled %s in %s", sel, g.Namespace)
		return st, nil
	}
	sort.Strings(st.pods)
	st.present = true
	for _, p := range ready {
		why, err := b.envoyState(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("gateway %s: %w", g.Ref(), err)
		}
		if why != "" {
			st.noEnvoy = why
			break
		}
	}
	return st, nil
}

// missingGateways says which of the scenario's gateways are missing here ("" when none).
func (b *Backend) missingGateways(s *catalog.Scenario) string {
	var parts []string
	for _, name := range s.Spec.Gateways {
		g, ok := b.gateways[name]
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("egress gateway %s not known", name))
		case !g.present:
			parts = append(parts, fmt.Sprintf("egress gateway %s missing (%s)", g.gw.Ref(), g.missing))
		}
	}
	return strings.Join(parts, "; ")
}

// asmGVK is the ASMEgressTrafficPolicy kind (any served version): where its CRD exists, ASM's
// controller serves it.
var asmGVK = schema.GroupVersionKind{Group: "istio.alibabacloud.com", Kind: "ASMEgressTrafficPolicy"}
