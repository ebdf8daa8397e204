package live

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/clusterdns"
	"github.com/egressconf/egressconf/pkg/image"
	"github.com/egressconf/egressconf/pkg/pki"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
)

// prepareHermetic sets up the run's stand-in internet: CA and leaves, the image (built and loaded
// when asked), the stand-in's objects, the DNS (scoped: the run's pods and gateways resolve
// through the stand-in's resolver; override: CoreDNS, cluster-wide), and a check from a pod that
// every external host resolves to the stand-in and answers.
func (b *Backend) prepareHermetic(ctx context.Context) error {
	t := b.o.Timeouts
	if len(b.o.Hosts) == 0 {
		return fmt.Errorf("a hermetic run needs the catalog's external hosts (its hosts.yaml), and none were given")
	}
	hosts := standin.HostNames(b.o.Hosts)
	// Decided before anything is created: a refusal leaves the cluster as it was.
	mode, err := b.decideDNS(ctx)
	if err != nil {
		return err
	}
	in := &standin.InCluster{RunID: b.o.RunID, Image: b.o.StandinImage, Hosts: b.o.Hosts}
	if err := b.phase("stand-in certificates", func() (err error) {
		in.Certs, err = pki.Generate(hosts, pki.Options{})
		return err
	}); err != nil {
		return err
	}
	if b.o.BuildStandinImage {
		if b.o.LoadImage == nil {
			return fmt.Errorf("the stand-in image must be loaded into the cluster, and no way to load images was given")
		}
		dir, err := b.workDir()
		if err != nil {
			return err
		}
		archive := filepath.Join(dir, "standin.tar")
		if err := b.phase("stand-in image build "+b.o.StandinImage, func() error {
			return image.BuildStandin(ctx, image.Options{Ref: b.o.StandinImage, OutFile: archive})
		}); err != nil {
			return err
		}
		if err := b.phase("stand-in image load", func() error { return b.o.LoadImage(ctx, archive) }); err != nil {
			return err
		}
	}
	// The stand-in's namespace must be ours or absent: standin.Apply would update anything.
	if ns, err := b.cs.CoreV1().Namespaces().Get(ctx, standin.Namespace, metav1.GetOptions{}); err == nil && !b.ours(ns) {
		return &OwnershipError{Kind: "Namespace", Name: standin.Namespace, ManagedBy: ns.Labels[fixtures.LabelManagedBy], Run: ns.Labels[fixtures.LabelRun], RunID: b.o.RunID}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	b.standin = in
	if err := b.phase("stand-in deploy", func() error {
		if err := in.Apply(ctx, b.cs); err != nil {
			return err
		}
		return in.WaitReady(ctx, b.cs, t.Provision)
	}); err != nil {
		return err
	}
	if mode == clusterdns.ModeScoped {
		b.dns = &fixtures.DNS{Nameserver: in.ServiceIP, ClusterDomain: b.clusterDomain(ctx)}
		return b.phase("scoped DNS: the run's pods resolve through the stand-in", func() error {
			gws, err := b.scopeGateways(ctx)
			if err != nil {
				return err
			}
			note := scopedDNSNote(in.ServiceIP, gws)
			fmt.Fprintf(b.o.Progress, "   cluster DNS: %s\n", note)
			b.mu.Lock()
			b.info.ClusterDNS = note
			b.mu.Unlock()
			return b.checkDNS(ctx)
		})
	}
	// Said, and recorded for the reports, before CoreDNS changes.
	plan := clusterdns.OverridePlan(hosts, in.ServiceFQDN(""), in.ServiceIP)
	fmt.Fprintf(b.o.Progress, "   cluster DNS: %s\n", plan)
	b.mu.Lock()
	b.info.ClusterDNS = plan
	b.mu.Unlock()
	return b.phase("cluster DNS override", func() error {
		restore, err := clusterdns.Override(ctx, b.cs, hosts, in.ServiceFQDN(""), clusterdns.WithRunID(b.o.RunID))
		if err != nil {
			return err
		}
		b.dnsRestore = restore
		if b.o.RestartCoreDNS {
			if err := b.restartCoreDNS(ctx); err != nil {
				return err
			}
		}
		return b.checkDNS(ctx)
	})
}

// restartCoreDNS deletes CoreDNS's pods so the new ones read the Corefile at once (instead of
// CoreDNS's reload plugin noticing the kubelet's refresh of the mounted ConfigMap, a minute or
// two later), and waits for the Deployment to be available again.
func (b *Backend) restartCoreDNS(ctx context.Context) error {
	pods, err := b.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, p := range pods.Items {
		if err := b.cs.CoreV1().Pods("kube-system").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("restart CoreDNS: %w", err)
		}
	}
	old := map[string]bool{}
	for _, p := range pods.Items {
		old[p.Name] = true
	}
	return b.poll(ctx, b.o.Timeouts.Provision, func(ctx context.Context) (bool, error) {
		cur, err := b.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range cur.Items {
			p := &cur.Items[i]
			if old[p.Name] {
				return false, nil
			}
			if p.Status.Phase == corev1.PodRunning && podReady(p) {
				ready++
			}
		}
		return ready > 0 && ready == len(cur.Items), nil
	})
}

// checkDNS runs a pod without a sidecar in the stand-in's namespace and polls, with curl, until
// every external host answers from the stand-in on its first port (the Corefile change reached
// CoreDNS).
func (b *Backend) checkDNS(ctx context.Context) error {
	w := catalog.Workload{Name: "dnscheck", Namespace: standin.Namespace, Fixture: "sleep", ServiceAccount: "default"}
	objs, err := fixtures.Workload(w, fixtures.Options{RunID: b.o.RunID, CurlImage: b.o.CurlImage, TrustRunCA: true, DNS: b.dns})
	if err != nil {
		return err
	}
	var made []objRef
	// The pod trusts the run's CA, as the fixtures do, so HTTPS is checked with verification.
	objs = append([]fixtures.Object{b.standin.CABundleConfigMap(standin.Namespace)}, objs...)
	for _, o := range objs {
		if _, ok := o.(*corev1.Service); ok {
			continue
		}
		u, err := toUnstructured(o)
		if err != nil {
			return err
		}
		a, err := b.createOwned(ctx, u)
		if err != nil {
			return err
		}
		made = append(made, a.ref)
	}
	defer func() { _ = b.deleteRefs(context.WithoutCancel(ctx), made) }()
	var pod *corev1.Pod
	if err := b.poll(ctx, b.o.Timeouts.Provision, func(ctx context.Context) (bool, error) {
		p, err := b.workloadPod(ctx, w)
		pod = p
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("DNS check pod: %s: %w", b.podTrouble(ctx, w), err)
	}
	svc, err := b.cs.CoreV1().Services(standin.Namespace).Get(ctx, standin.ServiceName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("stand-in Service: %w", err)
	}
	var last string
	err = b.poll(ctx, b.o.Timeouts.Provision, func(ctx context.Context) (bool, error) {
		var bad []string
		for _, host := range b.standin.Hosts {
			h := host.Name
			res, err := b.exec(ctx, pod.Namespace, pod.Name, "sleep", []string{"curl", "-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code} %{remote_ip}", hostURL(host, host.PortList()[0], "/")})
			if err != nil {
				return false, err
			}
			code, ip, _ := strings.Cut(strings.TrimSpace(res.Stdout), " ")
			switch {
			case res.ExitCode != 0 || code == "000":
				bad = append(bad, fmt.Sprintf("%s (curl exit %d)", h, res.ExitCode))
			case ip != svc.Spec.ClusterIP:
				bad = append(bad, fmt.Sprintf("%s (answered from %s, not the stand-in's %s)", h, ip, svc.Spec.ClusterIP))
			}
		}
		last = strings.Join(bad, ", ")
		return len(bad) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("external hosts do not answer from the stand-in: %s: %w", last, err)
	}
	return b.checkStandinOutcomes(ctx, pod)
}

// checkStandinOutcomes asserts, from a pod without a sidecar, each host's documented answer by name
// on every port it declares: the status of its behaviour (verified against the run's CA over
// HTTPS, the HTTP version its ALPN allows), and for httpbin hosts /anything reporting the scheme
// the host received.
func (b *Backend) checkStandinOutcomes(ctx context.Context, pod *corev1.Pod) error {
	type check struct {
		url, body string
		status    int
		version   string
		delay     time.Duration
	}
	var checks []check
	for _, h := range b.standin.Hosts {
		for _, p := range h.PortList() {
			bh := h.For(p.Protocol)
			version := "1.1"
			if p.Protocol == standin.ProtocolHTTPS && h.NegotiatedALPN() == standin.ALPNHTTP2 {
				version = "2"
			}
			st := bh.Status
			switch {
			case bh.HTTPBin:
				st = 200
				u := hostURL(h, p, "/anything")
				checks = append(checks, check{url: u, status: 200, version: version, body: fmt.Sprintf(`"url": "%s"`, u)})
			case bh.Redirect != nil:
				st = bh.Redirect.Status
			}
			checks = append(checks, check{url: hostURL(h, p, "/"), status: st, version: version, delay: bh.Delay})
		}
	}
	var last string
	err := b.poll(ctx, b.o.Timeouts.Provision, func(ctx context.Context) (bool, error) {
		var bad []string
		for _, c := range checks {
			req, err := probe.ParseCurl("curl " + c.url)
			if err != nil {
				return false, err
			}
			args := probe.Args(req, probe.Options{ConnectTimeout: b.o.Timeouts.ProbeConnect, MaxTime: b.o.Timeouts.ProbeMax + c.delay})
			res, err := b.exec(ctx, pod.Namespace, pod.Name, "sleep", append([]string{"curl"}, args...))
			if err != nil {
				return false, err
			}
			obs, err := probe.ParseOutput(res.Stdout, res.Stderr, res.ExitCode)
			if err != nil {
				return false, fmt.Errorf("stand-in check %s: %w", c.url, err)
			}
			switch {
			case obs.ExitCode != 0 || obs.HTTPCode != c.status:
				bad = append(bad, fmt.Sprintf("%s: %s, want %d", c.url, obs.Summary(), c.status))
			case obs.HTTPVersion != c.version:
				bad = append(bad, fmt.Sprintf("%s: HTTP/%s, want HTTP/%s", c.url, obs.HTTPVersion, c.version))
			case c.body != "" && !strings.Contains(obs.Body, c.body):
				bad = append(bad, fmt.Sprintf("%s: body lacks %s", c.url, c.body))
			}
		}
		last = strings.Join(bad, "; ")
		return len(bad) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("stand-in hosts do not answer as documented: %s: %w", last, err)
	}
	fmt.Fprintf(b.o.Progress, "   stand-in: %d requests by name from a pod answered as documented (every declared port; HTTPS verified with the run's CA, HTTP version by ALPN)\n", len(checks))
	return nil
}

// hostURL is the URL of path on a host's port, the port written only when it is not the
// protocol's default.
func hostURL(h standin.Host, p standin.Port, path string) string {
	if (p.Protocol == standin.ProtocolHTTP && p.Port == 80) || (p.Protocol == standin.ProtocolHTTPS && p.Port == 443) {
		return p.Protocol + "://" + h.Name + path
	}
	return fmt.Sprintf("%s://%s:%d%s", p.Protocol, h.Name, p.Port, path)
}

// originationCA creates, before the objects are applied, the ConfigMap egressconf-standin-ca
// (the run's CA) in the namespace of each DestinationRule among objs that names it in a
// tls.credentialName (configmap://<namespace>/egressconf-standin-ca: the hermetic adaptation,
// pkg/adapt), once per scenario: istiod then has the CA when it pushes the rule. The ConfigMap is
// the scenario's, deleted at its teardown after the rule.
func (b *Backend) originationCA(ctx context.Context, sc *scenarioState, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		ns := o.GetNamespace()
		if o.GetKind() != "DestinationRule" || sc.caNamespaces[ns] || !namesCredential(o.Object["spec"], "configmap://"+ns+"/"+standin.CACredentialName) {
			continue
		}
		if b.standin == nil {
			return fmt.Errorf("DestinationRule %s/%s names the stand-in CA (%s) and the run has no stand-in internet", ns, o.GetName(), standin.CACredentialName)
		}
		cm, err := toUnstructured(b.standin.CACredentialConfigMap(ns))
		if err != nil {
			return err
		}
		a, err := b.createOwned(ctx, cm)
		if err != nil {
			return fmt.Errorf("the stand-in CA for DestinationRule %s/%s: %w", ns, o.GetName(), err)
		}
		sc.track(a.ref)
		if sc.caNamespaces == nil {
			sc.caNamespaces = map[string]bool{}
		}
		sc.caNamespaces[ns] = true
	}
	return nil
}

// namesCredential reports whether a tls.credentialName anywhere in v is name.
func namesCredential(v any, name string) bool {
	switch x := v.(type) {
	case map[string]any:
		if x["credentialName"] == name {
			return true
		}
		for _, e := range x {
			if namesCredential(e, name) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if namesCredential(e, name) {
				return true
			}
		}
	}
	return false
}
