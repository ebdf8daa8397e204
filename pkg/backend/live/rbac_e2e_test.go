package live_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/egressconf/egressconf/deploy/rbac"
	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/istioinstall"
	"github.com/egressconf/egressconf/pkg/standin"
)

// rbacSA is the ServiceAccount the files of deploy/rbac bind.
const rbacSA = "egressconf"

// localclusterRBAC runs G1 with --backend existing on the local cluster as a ServiceAccount bound
// to exactly the role set of deploy/rbac, Istio installed beforehand by the admin (as a cluster's
// owner would). Every request of the run goes through a recording proxy: each one the API server
// allowed must be granted by the role files themselves (not by some default binding), and each
// grant must be used or be on the list of grants G1 here does not exercise. Then the same run with
// pods/exec removed must fail naming the verb, the resource and the file.
func (e *e2e) localclusterRBAC(t *testing.T) {
	kc := os.Getenv("EGRESSCONF_LOCALCLUSTER_KUBECONFIG")
	if kc == "" {
		t.Skip("EGRESSCONF_LOCALCLUSTER_KUBECONFIG not set")
	}
	ctx := context.Background()
	admin, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(admin)
	lc := &e2e{bin: e.bin, reports: e.reports, cfg: admin, cs: cs}

	// Istio, installed by the admin as for any owner's cluster (the same charts and images as the
	// localcluster-install-istio check), removed at the end.
	ic := istioinstall.Options{Profile: istioinstall.ProfileUpstreamEnvoy, Timeout: 5 * time.Minute, Progress: testWriter{t}}
	f := strings.Fields(env("EGRESSCONF_ISTIO_FLAGS", ""))
	for i := 0; i+1 < len(f); i += 2 {
		switch f[i] {
		case "--istio-charts":
			ic.ChartsDir = f[i+1]
		case "--istio-hub":
			ic.Hub = f[i+1]
		case "--istio-tag":
			ic.Tag = f[i+1]
		}
	}
	start := time.Now()
	res, err := istioinstall.Install(ctx, admin, ic)
	if res != nil {
		defer func() {
			if err := istioinstall.Uninstall(context.Background(), admin, res, ic); err != nil {
				t.Errorf("Istio uninstall: %v", err)
			}
		}()
	}
	if err != nil {
		t.Fatalf("Istio install (admin): %v", err)
	}
	t.Logf("Istio installed by the admin in %s", time.Since(start).Round(time.Second))

	groups := []string{"G1"}
	if os.Getenv("EGRESSCONF_RBAC_CATALOG") == "1" {
		// The whole catalog as the ServiceAccount (about 15 minutes), to see the role set hold
		// for every group; the grants it leaves unused are logged, not checked.
		groups = nil
	}
	lc.rbacCheck(t, "localcluster-rbac", admin, groups, groups == nil, false,
		"--load-command", env("EGRESSCONF_LOCALCLUSTER_LOAD", "load-images.sh"), "--istio-profile", "upstream-envoy")
}

// existingRBAC is the same check on the kept kind cluster (Istio installed by the kind run, the
// stand-in image already on its node, an enforcing NetworkPolicy CNI): G1 as the ServiceAccount,
// then without pods/exec. Grants G1 leaves unused here are logged, not checked (the unused list
// is the local cluster's, which has no enforcer).
func (e *e2e) existingRBAC(t *testing.T) {
	if e.cs == nil {
		t.Skip("no kind cluster")
	}
	e.rbacCheck(t, "existing-rbac", e.cfg, []string{"G1"}, true, true, "--standin-image", standin.DefaultImage)
}

// rbacCheck binds deploy/rbac to the ServiceAccount, runs the groups with --backend existing as it
// through a recording proxy (every request allowed must be granted by the files; unless logUnused,
// every grant must be used or be listed as not exercised), then, for a group run, the same
// run with pods/exec removed, which must fail naming it. e's clients are the admin's; enforced
// says the cluster enforces NetworkPolicy (DENYNS-05/06 are then observed, not skipped).
func (e *e2e) rbacCheck(t *testing.T, name string, admin *rest.Config, groups []string, logUnused, enforced bool, extra ...string) {
	ctx := context.Background()
	cs := e.cs
	files, err := rbac.Files()
	if err != nil {
		t.Fatal(err)
	}
	unbind := bindRoleSet(t, cs, files)
	defer unbind()
	proxy := newRecordingProxy(t, admin, saToken(t, cs))
	defer proxy.close()
	saKC := filepath.Join(t.TempDir(), "sa.kubeconfig")
	writeKubeconfig(t, saKC, proxy.url)

	args := func(runID string) []string {
		a := []string{"run", "--backend", "existing", "--kubeconfig", saKC,
			// Istio (its gateways) was installed by the admin, not by this run, so scoped DNS
			// cannot cover the gateways: the run needs --cluster-dns override, which is what the
			// optional egressconf-coredns.yaml grants (--restart-coredns is its only pod deletion).
			"--cluster-dns", "override", "--restart-coredns", "--reports", e.reports, "--run-id", runID}
		a = append(a, extra...)
		for _, g := range groups {
			a = append(a, "--group", g)
		}
		if v := env("EGRESSCONF_CURL_IMAGE", "docker.io/local/curl:1"); v != "" {
			a = append(a, "--curl-image", v)
		}
		if v := env("EGRESSCONF_NGINX_IMAGE", "docker.io/local/nginx:1"); v != "" {
			a = append(a, "--nginx-image", v)
		}
		return a
	}

	out, code, d := e.run(t, name, args("e2e-"+name)...)
	t.Logf("egressconf run --backend existing (groups %v, none: the whole catalog) as ServiceAccount %s/%s bound to deploy/rbac: exit %d in %s", groups, rbacSA, rbacSA, code, d.Round(time.Second))
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if strings.Contains(out, "permission denied") || !strings.Contains(out, "== leak check") || strings.Contains(out, "leak check FAILED") {
		t.Error("a permission was denied, or the leak check did not pass")
	}
	if code == 0 {
		e.checkResults(t, readResults(t, filepath.Join(e.reports, "e2e-"+name)), catalogIDs(t, groups...), enforced)
	}
	e.checkNothingLeft(t, "e2e-"+name)
	proxy.check(t, files, logUnused)
	if groups == nil {
		return
	}

	// The negative check: pods/exec taken out of egressconf-run.
	cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "egressconf-run", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(cr.Rules)
	cr.Rules = slices.DeleteFunc(cr.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "pods/exec") })
	if len(cr.Rules) != n-1 {
		t.Fatalf("egressconf-run has %d pods/exec rules, want 1", n-len(cr.Rules))
	}
	if _, err := cs.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code, d = e.run(t, name+"-denied", args("e2e-"+name+"-denied")...)
	t.Logf("the same run without pods/exec: exit %d in %s", code, d.Round(time.Second))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// The first exec is Envoy's server_info in a gateway; the verb is the one the API server
	// checked (a WebSocket upgrade is a get; newer API servers check create too).
	want := regexp.MustCompile(`permission denied: (get|create) pods/exec in namespace istio-(system|egress) \(deploy/rbac/egressconf-run\.yaml\) for user "system:serviceaccount:egressconf:egressconf"`)
	if m := want.FindString(out); m == "" {
		t.Errorf("output lacks %s", want)
	} else {
		t.Logf("the run said: %s", m)
	}
	e.checkNothingLeft(t, "e2e-"+name+"-denied")
}

// checkNothingLeft asserts, with the admin's credentials (the role set cannot list Secrets), that
// no object of the run is left and that CoreDNS and the mesh config are as before.
func (e *e2e) checkNothingLeft(t *testing.T, runID string) {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=" + runID}
	var left []string
	if l, err := e.cs.CoreV1().Namespaces().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "namespace "+o.Name)
		}
	}
	if l, err := e.cs.CoreV1().Secrets("").List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "secret "+o.Namespace+"/"+o.Name)
		}
	}
	if l, err := e.cs.CoreV1().ConfigMaps("").List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "configmap "+o.Namespace+"/"+o.Name)
		}
	}
	if l, err := e.cs.CoreV1().Pods("").List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "pod "+o.Namespace+"/"+o.Name)
		}
	}
	if len(left) > 0 {
		t.Errorf("run %s left: %v", runID, left)
	}
	e.checkRestored(t)
}

// bindRoleSet creates the ServiceAccount and every role and binding of the files, as the admin;
// the returned function deletes them.
func bindRoleSet(t *testing.T, cs kubernetes.Interface, files []rbac.File) func() {
	t.Helper()
	ctx := context.Background()
	var undo []func() error
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("removing the role set: %v", err)
			}
		}
	}
	must := func(err error) {
		if err != nil {
			cleanup()
			t.Fatal(err)
		}
	}
	bg := context.Background()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rbacSA}}, metav1.CreateOptions{})
	must(err)
	undo = append(undo, func() error { return cs.CoreV1().Namespaces().Delete(bg, rbacSA, metav1.DeleteOptions{}) })
	_, err = cs.CoreV1().ServiceAccounts(rbacSA).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: rbacSA}}, metav1.CreateOptions{})
	must(err)
	r := cs.RbacV1()
	for _, f := range files {
		for _, o := range f.ClusterRoles {
			_, err := r.ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
			must(err)
			undo = append(undo, func() error { return r.ClusterRoles().Delete(bg, o.Name, metav1.DeleteOptions{}) })
		}
		for _, o := range f.Roles {
			_, err := r.Roles(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
			must(err)
			undo = append(undo, func() error { return r.Roles(o.Namespace).Delete(bg, o.Name, metav1.DeleteOptions{}) })
		}
		for _, o := range f.ClusterBindings {
			_, err := r.ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
			must(err)
			undo = append(undo, func() error { return r.ClusterRoleBindings().Delete(bg, o.Name, metav1.DeleteOptions{}) })
		}
		for _, o := range f.RoleBindings {
			_, err := r.RoleBindings(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
			must(err)
			undo = append(undo, func() error { return r.RoleBindings(o.Namespace).Delete(bg, o.Name, metav1.DeleteOptions{}) })
		}
	}
	return cleanup
}

// saToken mints a token for the ServiceAccount with the TokenRequest API.
func saToken(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	exp := int64(2 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(rbacSA).CreateToken(context.Background(), rbacSA,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// writeKubeconfig writes a kubeconfig for server with no credentials (the proxy adds the token).
func writeKubeconfig(t *testing.T, path, server string) {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["local"] = &clientcmdapi.Cluster{Server: server}
	c.AuthInfos[rbacSA] = &clientcmdapi.AuthInfo{}
	c.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: rbacSA}
	c.CurrentContext = "sa"
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
}

// recordingProxy forwards to the API server as the ServiceAccount (its token, over HTTP/1.1 so
// exec's WebSocket and SPDY upgrades pass) and records every request with the answer's status.
type recordingProxy struct {
	url string
	srv *http.Server
	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	method, path string
	watch        bool
	status       int
}

func newRecordingProxy(t *testing.T, admin *rest.Config, token string) *recordingProxy {
	t.Helper()
	target, err := url.Parse(admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(&rest.Config{Host: admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile, ServerName: admin.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg.NextProtos = []string{"http/1.1"}
	p := &recordingProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: false, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}},
		ModifyResponse: func(resp *http.Response) error {
			req := resp.Request
			p.mu.Lock()
			p.got = append(p.got, recorded{method: req.Method, path: req.URL.Path, watch: req.URL.Query().Get("watch") == "true", status: resp.StatusCode})
			p.mu.Unlock()
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: rp}
	go func() { _ = p.srv.Serve(ln) }()
	return p
}

func (p *recordingProxy) close() { _ = p.srv.Close() }

// request is what the API server's authorizer sees for a recorded call (k8s.io/apiserver's
// RequestInfo, for the paths a run uses); ok is false for non-resource paths (discovery,
// /version: every authenticated user's).
func (r recorded) request() (rbac.Request, bool) {
	parts := strings.Split(strings.Trim(r.path, "/"), "/")
	var q rbac.Request
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		q.Group = parts[1]
		parts = parts[3:]
	default:
		return q, false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		q.Namespace = parts[1]
		parts = parts[2:]
	}
	q.Resource = parts[0]
	if len(parts) >= 2 {
		q.Name = parts[1]
	}
	if len(parts) >= 3 {
		q.Resource += "/" + parts[2]
	}
	switch r.method {
	case http.MethodGet:
		q.Verb = "get"
		if q.Name == "" {
			q.Verb = "list"
			if r.watch {
				q.Verb = "watch"
			}
		}
	case http.MethodPost:
		q.Verb = "create"
	case http.MethodPut:
		q.Verb = "update"
	case http.MethodPatch:
		q.Verb = "patch"
	case http.MethodDelete:
		q.Verb = "delete"
		if q.Name == "" {
			q.Verb = "deletecollection"
		}
	}
	return q, true
}

// grant is one verb on one resource (and name) of one rule.
type grant struct{ file, verb, resource, name string }

// g1Unused are the grants a G1 run on the local cluster does not exercise, and why each is still
// needed. A grant neither used nor here fails the check: the role set must stay exactly what a run
// needs.
var g1Unused = map[string]string{
	"patch namespaces default":                               "G1 uses no existing namespace; G2 to G13 use default: its istio-injection label is set and restored",
	"patch namespaces istio-egress":                          "the same for G2 to G6, which use the egress gateway's namespace",
	"create pods":                                            "the NetworkPolicy self-test, on a cluster with an enforcer (none here)",
	"get pods":                                               "the NetworkPolicy self-test waits for its two pods",
	"list events":                                            "diagnostics of a failed expectation",
	"get networkpolicies.networking.k8s.io":                  "DENYNS-05/06's NetworkPolicy and the self-test",
	"create networkpolicies.networking.k8s.io":               "DENYNS-05/06's NetworkPolicy and the self-test",
	"delete networkpolicies.networking.k8s.io":               "DENYNS-05/06's NetworkPolicy and the self-test",
	"get asmegresstrafficpolicies.istio.alibabacloud.com":    "G2 to G6's ASMEgressTrafficPolicy where a controller serves it (ASM); translated elsewhere",
	"list asmegresstrafficpolicies.istio.alibabacloud.com":   "the same, and the leak check",
	"create asmegresstrafficpolicies.istio.alibabacloud.com": "the same",
	"delete asmegresstrafficpolicies.istio.alibabacloud.com": "the same",
	"create pods/portforward":                                "--probe xds",
	"create pods/exec":                                       "SPDY's POST, client-go's fallback when the WebSocket upgrade fails; newer API servers check it for a WebSocket exec too",
	"get secrets standin-certs":                              "the stand-in's certificates are replaced when its namespace from an earlier kept run (--keep) is still there",
	"update secrets standin-certs":                           "the same",
}

// check asserts that every request the API server allowed is granted by the role files, and that
// every grant is used or listed in g1Unused (with logUnused, it logs the unused ones instead); it
// logs the requests by kind.
func (p *recordingProxy) check(t *testing.T, files []rbac.File, logUnused bool) {
	t.Helper()
	p.mu.Lock()
	got := append([]recorded(nil), p.got...)
	p.mu.Unlock()
	used := map[grant]bool{}
	seen := map[string]int{}
	for _, r := range got {
		q, ok := r.request()
		if !ok {
			continue
		}
		seen[fmt.Sprintf("%d %s", r.status, q)]++
		if r.status == http.StatusForbidden {
			// Only the leak check may be refused: it lists every kind cluster-wide and skips those
			// it may not (Secrets among them).
			if q.Verb != "list" || q.Namespace != "" {
				t.Errorf("refused: %s %s (%s)", r.method, r.path, q)
			}
			continue
		}
		granting := false
		for _, f := range files {
			for _, rules := range roleRules(f, q.Namespace) {
				for _, rule := range rules {
					if rbac.RuleAllows(rule, q) {
						granting = true
						name := ""
						if len(rule.ResourceNames) > 0 {
							name = q.Name
						}
						used[grant{f.Name, q.Verb, withGroup(q.Resource, q.Group), name}] = true
					}
				}
			}
		}
		if !granting {
			t.Errorf("allowed but granted by no file of deploy/rbac (a default binding of this cluster?): %s %s (status %d)", r.method, r.path, r.status)
		}
	}
	lines := make([]string, 0, len(seen))
	for k, n := range seen {
		lines = append(lines, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(lines)
	t.Logf("%d requests of the run, by status, verb and resource:\n  %s", len(got), strings.Join(lines, "\n  "))
	var unused []string
	for _, f := range files {
		for _, rules := range roleRules(f, "") {
			for _, rule := range rules {
				for _, v := range rule.Verbs {
					for _, res := range rule.Resources {
						for _, g := range rule.APIGroups {
							names := rule.ResourceNames
							if len(names) == 0 {
								names = []string{""}
							}
							for _, n := range names {
								gr := grant{f.Name, v, withGroup(res, g), n}
								if used[gr] {
									continue
								}
								key := strings.TrimSpace(v + " " + gr.resource + " " + n)
								if _, ok := g1Unused[key]; (logUnused || !ok) && !usedAnyName(used, gr) {
									unused = append(unused, f.Name+": "+key)
								}
							}
						}
					}
				}
			}
		}
	}
	if logUnused {
		t.Logf("grants the run did not use: %v", unused)
		return
	}
	if len(unused) > 0 {
		t.Errorf("granted but neither used by the run nor listed in g1Unused (why it is needed): %v", unused)
	}
	// The list stays true: an entry the run did use is stale.
	for u := range used {
		if key := strings.TrimSpace(u.verb + " " + u.resource + " " + u.name); g1Unused[key] != "" {
			t.Errorf("g1Unused lists %q, which the run used: remove it", key)
		}
	}
}

// usedAnyName: a rule naming several objects (the NetworkPolicy enforcers' DaemonSets, the run's
// two Secrets) counts as used when one of its names is.
func usedAnyName(used map[grant]bool, g grant) bool {
	if g.name == "" {
		return false
	}
	for u := range used {
		if u.file == g.file && u.verb == g.verb && u.resource == g.resource && u.name != "" {
			return true
		}
	}
	return false
}

// roleRules are the rules of the file's roles that apply in namespace ns ("" : all of them).
func roleRules(f rbac.File, ns string) [][]rbacv1.PolicyRule {
	var out [][]rbacv1.PolicyRule
	for _, r := range f.ClusterRoles {
		out = append(out, r.Rules)
	}
	for _, r := range f.Roles {
		if ns == "" || r.Namespace == ns {
			out = append(out, r.Rules)
		}
	}
	return out
}

func withGroup(res, group string) string {
	if group == "" {
		return res
	}
	return res + "." + group
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// The recording proxy's reading of a path is the authorizer's (checked: the e2e run's 403s name the
// same verb and resource).
func TestRecordedRequest(t *testing.T) {
	for _, tc := range []struct {
		r    recorded
		want string
	}{
		{recorded{method: "GET", path: "/api/v1/namespaces"}, "list namespaces (cluster scope)"},
		{recorded{method: "GET", path: "/api/v1/namespaces/demo"}, "get namespaces demo (cluster scope)"},
		{recorded{method: "PATCH", path: "/api/v1/namespaces/default"}, "patch namespaces default (cluster scope)"},
		{recorded{method: "GET", path: "/api/v1/namespaces/istio-system/pods/istiod-1/exec"}, "get pods/exec in namespace istio-system"},
		{recorded{method: "POST", path: "/api/v1/namespaces/istio-system/pods/istiod-1/portforward"}, "create pods/portforward in namespace istio-system"},
		{recorded{method: "GET", path: "/api/v1/namespaces/d/pods", watch: true}, "watch pods in namespace d"},
		{recorded{method: "PUT", path: "/apis/networking.istio.io/v1/namespaces/istio-system/serviceentries/s"}, "update serviceentries.networking.istio.io in namespace istio-system"},
		{recorded{method: "DELETE", path: "/apis/apps/v1/namespaces/d/deployments"}, "deletecollection deployments.apps in namespace d"},
		{recorded{method: "GET", path: "/apis/apps/v1/deployments"}, "list deployments.apps (cluster scope)"},
	} {
		q, ok := tc.r.request()
		if !ok || q.String() != tc.want {
			t.Errorf("%s %s: %q %v, want %q", tc.r.method, tc.r.path, q, ok, tc.want)
		}
	}
	for _, p := range []string{"/version", "/apis", "/api/v1", "/apis/apps/v1", "/openapi/v3"} {
		if q, ok := (recorded{method: "GET", path: p}).request(); ok {
			t.Errorf("%s read as a resource request: %s", p, q)
		}
	}
}
