package live_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/suites"
)

// dnsScope checks, on a cluster the harness did not create, that a run without --cluster-dns
// override scopes its DNS: while the run's stand-in is up, a bystander pod in a namespace of its
// own resolves the catalog's hosts as the cluster does (not to the stand-in: here, with no
// internet, not at all), the run's own pods and gateways resolve them to the stand-in, and
// kube-system/coredns is the same before, during and after the run.
type dnsScope struct {
	cfg   *rest.Config
	cs    kubernetes.Interface
	runID string
	ns    string // the bystander's namespace

	corefile string
	mu       sync.Mutex
	checked  bool // the during-run check ran while the run's stand-in was up
	errs     []string
}

const bystanderNS = "e2e-dns-bystander"

func corefile(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data["Corefile"]
}

// newDNSScope records the Corefile and starts the bystander pod (the test's own, not the run's).
func newDNSScope(t *testing.T, cfg *rest.Config, cs kubernetes.Interface, runID string) *dnsScope {
	t.Helper()
	ctx := context.Background()
	d := &dnsScope{cfg: cfg, cs: cs, runID: runID, ns: bystanderNS, corefile: corefile(t, cs)}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: d.ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), d.ns, metav1.DeleteOptions{}) })
	zero := int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bystander", Namespace: d.ns},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &zero, Containers: []corev1.Container{{
			Name: "sleep", Image: env("EGRESSCONF_CURL_IMAGE", "docker.io/local/curl:1"), ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{"/bin/sleep", "infinity"},
		}}},
	}
	if _, err := cs.CoreV1().Pods(d.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(d.ns).Get(ctx, "bystander", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	}); err != nil {
		t.Fatalf("bystander pod not running: %v", err)
	}
	return d
}

func (d *dnsScope) exec(ctx context.Context, ns, pod, container string, cmd ...string) (string, error) {
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(d.cfg, "POST", req.URL())
	if err != nil {
		return "", err
	}
	// Two buffers: the streams are copied concurrently.
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String() + errOut.String(), err
}

// resolve is the first address getent finds for host in the pod ("" when it finds none: getent
// exits 2 on NXDOMAIN, SERVFAIL or no answer).
func (d *dnsScope) resolve(ctx context.Context, ns, pod, container, host string) (string, error) {
	out, err := d.exec(ctx, ns, pod, container, "getent", "ahostsv4", host)
	if err != nil {
		var ee utilexec.ExitError
		if errors.As(err, &ee) && ee.ExitStatus() == 2 {
			return "", nil
		}
		return "", fmt.Errorf("getent ahostsv4 %s in %s/%s: %v: %s", host, ns, pod, err, out)
	}
	if f := strings.Fields(out); len(f) > 0 {
		return f[0], nil
	}
	return "", nil
}

// during runs the checks once the run's fixtures exist; call it from the run's output (a step
// line). It proves it ran during the run by finding the run's stand-in Service before and after.
func (d *dnsScope) during() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.checked {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fail := func(format string, args ...any) { d.errs = append(d.errs, fmt.Sprintf(format, args...)) }
	standinIP := func() string {
		svc, err := d.cs.CoreV1().Services(standin.Namespace).Get(ctx, standin.ServiceName, metav1.GetOptions{})
		if err != nil || svc.Labels[fixtures.LabelRun] != d.runID {
			return ""
		}
		return svc.Spec.ClusterIP
	}
	ip := standinIP()
	if ip == "" {
		fail("during the run: no stand-in Service of run %s", d.runID)
		return
	}
	if cur := corefileOrErr(ctx, d.cs); cur != d.corefile {
		fail("during the run, kube-system/coredns's Corefile changed:\n%s", cur)
	}
	c, err := suites.Builtin()
	if err != nil {
		fail("%v", err)
		return
	}
	for _, h := range standin.HostNames(c.Hosts) {
		got, err := d.resolve(ctx, d.ns, "bystander", "sleep", h)
		if err != nil {
			fail("%v", err)
		} else if got == ip {
			fail("the bystander pod in %s resolved %s to the stand-in's %s", d.ns, h, ip)
		}
	}
	pods, err := d.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=" + d.runID + ",app=sleep"})
	if err != nil || len(pods.Items) == 0 {
		fail("no sleep pod of run %s during the run (%v)", d.runID, err)
	} else {
		p := pods.Items[0]
		for _, h := range []string{"www.aliyun.com", "httpbin.org"} {
			if got, err := d.resolve(ctx, p.Namespace, p.Name, "sleep", h); err != nil || got != ip {
				fail("the run's pod %s/%s resolved %s to %q (%v), want the stand-in's %s", p.Namespace, p.Name, h, got, err, ip)
			}
		}
	}
	gws, err := d.cs.CoreV1().Pods("istio-system").List(ctx, metav1.ListOptions{LabelSelector: "istio=egressgateway"})
	if err != nil || len(gws.Items) == 0 {
		fail("no egress gateway pod (%v)", err)
	}
	for _, p := range gws.Items {
		if c := p.Spec.DNSConfig; p.DeletionTimestamp == nil && (c == nil || len(c.Nameservers) == 0 || c.Nameservers[0] != ip) {
			fail("the run's egress gateway pod %s does not resolve through the stand-in %s: dnsConfig %+v", p.Name, ip, c)
		}
	}
	if standinIP() != ip {
		fail("the run's stand-in went away during the check: it did not run during the run")
		return
	}
	d.checked = true
}

func corefileOrErr(ctx context.Context, cs kubernetes.Interface) string {
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		return "error: " + err.Error()
	}
	return cm.Data["Corefile"]
}

// verify reports the during-run findings and compares the Corefile after the run.
func (d *dnsScope) verify(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.checked && len(d.errs) == 0 {
		t.Error("the DNS scope was never checked during the run (no step line seen)")
	}
	for _, e := range d.errs {
		t.Error(e)
	}
	if after := corefile(t, d.cs); after != d.corefile {
		t.Errorf("kube-system/coredns's Corefile changed by the run:\nbefore:\n%s\nafter:\n%s", d.corefile, after)
	}
}
