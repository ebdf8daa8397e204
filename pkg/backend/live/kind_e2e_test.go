package live_test

// Real checks of the live backends on a kind cluster. They run only with EGRESSCONF_KIND=1 (see
// scripts/ci-live.sh, which prepares a node image, a Docker engine, Istio's images and the charts).
// The subtests share one cluster and run in order:
//
//	kind-catalog      egressconf run --backend kind --probe curl,xds: the whole catalog observed and
//	                  predicted from the live istiod's xDS in one run, cluster kept
//	existing-dns-refusal  --backend existing on it without --cluster-dns override: refused (its
//	                  gateways are the kind run's), CoreDNS untouched
//	existing-G1       egressconf run --backend existing against that cluster (it did not create it),
//	                  with --cluster-dns override: the plan printed before CoreDNS changes, recorded
//	existing-refusal  an object the run did not create is never overwritten
//	api               probes, exec failures as errors, log reading, diagnostics, through the package
//	existing-missing-gateway  a scenario whose egress gateway is missing is skipped with the reason
//	sigint            SIGINT during a run: cleanup, leak check, CoreDNS and mesh config restored
//	localcluster-install-istio  --backend existing --install-istio --load-command on the local
//	                  cluster (not kind): Helm install, image loading by command, uninstall, leak check;
//	                  scoped DNS: during the run a bystander pod does not resolve the catalog's hosts
//	                  to the stand-in, the run's pods do, CoreDNS's Corefile never changes
//	localcluster-rbac  G1 with --backend existing on the local cluster as a ServiceAccount bound to
//	                  exactly deploy/rbac (Istio installed by the admin first); every request
//	                  checked against the role files; without pods/exec the run fails naming it
//	existing-rbac     the same on the kept kind cluster (its Istio is the kind run's)
//	existing-keep     --keep leaves the objects, the CoreDNS override and the mesh config in place
//	delete            the cluster deleted through the kind library
//	kind-create-delete  egressconf run --backend kind without --keep-cluster deletes the cluster it created
//
// Environment (defaults for the shared tools of this workplace):
//
//	EGRESSCONF_BIN            egressconf binary (default: built into a temporary directory)
//	EGRESSCONF_CLUSTER        kind cluster name (egressconf-e2e)
//	EGRESSCONF_NODE_IMAGE     node image (local/kind-node:v1.34.4; "" for kind's default)
//	EGRESSCONF_LOAD_ARCHIVES  space-separated image archives to load
//	EGRESSCONF_APPLY_MANIFESTS  space-separated manifests applied after the cluster's creation
//	                          (--apply-manifest): the NetworkPolicy enforcer (kube-router's firewall)
//	EGRESSCONF_ISTIO_FLAGS    extra flags for Istio (charts dir, hub, tag), space-separated
//	EGRESSCONF_CURL_IMAGE, EGRESSCONF_NGINX_IMAGE
//	EGRESSCONF_REPORTS        reports directory (reports)
//	EGRESSCONF_E2E_REUSE=1    skip the catalog run and use the existing cluster (iterating)
//	EGRESSCONF_LOCALCLUSTER_KUBECONFIG  a running local cluster (../shared/tools/localcluster) with
//	                          Istio's images imported and no Istio installed: --install-istio and
//	                          --load-command are checked there
//	EGRESSCONF_LOCALCLUSTER_LOAD        its image load command (load-images.sh)
//	EGRESSCONF_KEEP_CLUSTER=1 do not delete the cluster at the end
//	EGRESSCONF_RBAC_CATALOG=1 localcluster-rbac runs the whole catalog, not G1 (about 15 minutes)

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/backend/live"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/cluster"
	"github.com/egressconf/egressconf/pkg/clusterdns"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/suites"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

type e2e struct {
	bin, cluster, reports string
	cfg                   *rest.Config
	cs                    kubernetes.Interface
}

func TestKindE2E(t *testing.T) {
	if os.Getenv("EGRESSCONF_KIND") != "1" {
		t.Skip("set EGRESSCONF_KIND=1 to run the live backends on a kind cluster (scripts/ci-live.sh)")
	}
	e := &e2e{
		bin:     env("EGRESSCONF_BIN", ""),
		cluster: env("EGRESSCONF_CLUSTER", "egressconf-e2e"),
		reports: env("EGRESSCONF_REPORTS", "reports"),
	}
	if abs, err := filepath.Abs(e.reports); err == nil {
		e.reports = abs
	}
	if e.bin == "" {
		e.bin = filepath.Join(t.TempDir(), "egressconf")
		build := exec.Command("go", "build", "-o", e.bin, "github.com/egressconf/egressconf/cmd/egressconf")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build egressconf: %v\n%s", err, out)
		}
	}
	ok := t.Run("kind-catalog", e.kindCatalog)
	if !ok && e.cs == nil {
		t.Fatal("no cluster: the other checks cannot run")
	}
	t.Run("kind-corpus", e.kindCorpus)
	t.Run("existing-dns-refusal", e.existingDNSRefusal)
	t.Run("existing-G1", e.existingG1)
	t.Run("existing-refusal", e.existingRefusal)
	t.Run("api", e.api)
	t.Run("existing-missing-gateway", e.missingGateway)
	t.Run("sigint", e.sigint)
	t.Run("localcluster-install-istio", e.localcluster)
	t.Run("localcluster-rbac", e.localclusterRBAC)
	t.Run("existing-rbac", e.existingRBAC)
	t.Run("existing-keep", e.keep)
	t.Run("delete", func(t *testing.T) {
		if env("EGRESSCONF_KEEP_CLUSTER", "") == "1" {
			t.Skip("EGRESSCONF_KEEP_CLUSTER=1")
		}
		start := time.Now()
		if err := cluster.Delete(context.Background(), e.cluster); err != nil {
			t.Fatal(err)
		}
		if ok, err := cluster.Exists(e.cluster); err != nil || ok {
			t.Fatalf("cluster still exists after delete (%v)", err)
		}
		t.Logf("kind cluster %s deleted in %s", e.cluster, time.Since(start).Round(time.Millisecond))
	})
	t.Run("kind-create-delete", e.kindCreateDelete)
}

// run runs egressconf with the args, streaming its output to the test's stdout and a file.
func (e *e2e) run(t *testing.T, name string, args ...string) (string, int, time.Duration) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	out, code, d := e.start(t, name, cmd, nil)
	return out, code, d
}

// start runs cmd, calling onLine for each output line (it may signal the process).
func (e *e2e) start(t *testing.T, name string, cmd *exec.Cmd, onLine func(string)) (string, int, time.Duration) {
	t.Helper()
	if err := os.MkdirAll(e.reports, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(e.reports, "e2e-"+name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var all strings.Builder
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			all.WriteString(line + "\n")
			mu.Unlock()
			fmt.Fprintln(logf, line)
			fmt.Printf("[%s] %s\n", name, line)
			if onLine != nil {
				onLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	fmt.Printf("[%s] $ %s\n", name, strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	d := time.Since(start)
	pw.Close()
	<-done
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			code = 128 + int(st.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return all.String(), code, d
}

func (e *e2e) istioFlags() []string {
	var f []string
	f = append(f, strings.Fields(env("EGRESSCONF_ISTIO_FLAGS", ""))...)
	if v := env("EGRESSCONF_CURL_IMAGE", "docker.io/local/curl:1"); v != "" {
		f = append(f, "--curl-image", v)
	}
	if v := env("EGRESSCONF_NGINX_IMAGE", "docker.io/local/nginx:1"); v != "" {
		f = append(f, "--nginx-image", v)
	}
	return f
}

func readResults(t *testing.T, dir string) *report.Run {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var run report.Run
	if err := json.Unmarshal(data, &run); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{report.JUnitFile, report.SummaryFile, report.ConformanceFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report %s missing: %v", f, err)
		}
	}
	return &run
}

// checkResults asserts what a kind cluster here must show, with every sidecar and gateway running
// upstream Envoy and kube-router's firewall enforcing NetworkPolicy: every expectation observed
// through the data plane (DENYNS-04, from a pod without a sidecar, gets the stand-in's 301;
// DENYNS-05, the same pod under the NetworkPolicy, is cut off: kube-router's firewall rejects, so
// curl is refused (exit 7), which the expectation's cniRejects accepts in place of a dropping
// enforcer's timeout; DENYNS-06, its neighbour with a sidecar, still gets the egress gateway's
// 403), none skipped, failed or errored; the run names the
// Envoy that ran and the enforcer its self-test proved. Without an enforcer (enforced false: the
// local cluster) the two NetworkPolicy expectations must be skipped for the missing capability.
func (e *e2e) checkResults(t *testing.T, run *report.Run, ids map[string]bool, enforced bool) {
	t.Helper()
	c := run.Counts()
	t.Logf("%d results: %d passed, %d failed, %d errored, %d skipped; proxy %s", c.Total(), c.Passed, c.Failed, c.Errored, c.Skipped, run.Backend.Proxy)
	if !strings.Contains(run.Backend.Proxy, "envoy 1.40.0") {
		t.Errorf("the run names no Envoy 1.40.0 among its proxies: %q", run.Backend.Proxy)
	}
	if np := run.Backend.NetworkPolicy; enforced && (!strings.Contains(np, "kube-router") || !strings.Contains(np, "proven to block")) {
		t.Errorf("the run does not record kube-router's firewall proven by the self-test: NetworkPolicy %q", np)
	}
	seen := map[string]bool{}
	// DENYNS-05: kube-router's firewall rejects (curl exit 7, "refused"), which the expectation's
	// cniRejects accepts as the timeout of a dropping enforcer.
	observedPrefix := map[string]string{"DENYNS-04": "301", "DENYNS-05": "refused (exit 7)", "DENYNS-06": "403"}
	for _, r := range run.Results {
		seen[r.ID] = true
		if r.Oracle != "observed-live-data-plane" {
			t.Errorf("%s oracle %s", r.ID, r.Oracle)
		}
		switch {
		case !enforced && (r.ID == "DENYNS-05" || r.ID == "DENYNS-06"):
			if r.Verdict != report.Skip || r.Capability != "networkpolicy" {
				t.Errorf("%s without a NetworkPolicy enforcer: %s %q %s; want a skip for capability networkpolicy", r.ID, r.Verdict, r.Observed, r.Message)
			}
		case observedPrefix[r.ID] != "":
			if r.Verdict != report.Pass || !strings.HasPrefix(r.Observed, observedPrefix[r.ID]) {
				t.Errorf("%s: %s %q %s; want a pass observed as %s", r.ID, r.Verdict, r.Observed, r.Message, observedPrefix[r.ID])
			}
		case r.Verdict == report.Skip:
			t.Errorf("%s skipped (%s): every expectation must be observed through Envoy", r.ID, r.Message)
		case r.Verdict != report.Pass:
			t.Errorf("%s: %s %s", r.ID, r.Verdict, r.Message)
		}
	}
	for id := range ids {
		if !seen[id] {
			t.Errorf("expectation %s has no result", id)
		}
	}
}

// builtinHosts are the built-in catalog's external hosts.
func builtinHosts(t *testing.T) []standin.Host {
	t.Helper()
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c.Hosts
}

func catalogIDs(t *testing.T, groups ...string) map[string]bool {
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range c.Scenarios {
		if len(groups) > 0 && !slices.Contains(groups, s.Metadata.Group) {
			continue
		}
		for _, st := range s.Spec.Steps {
			for _, x := range st.Expect {
				ids[x.ID] = true
			}
		}
	}
	return ids
}

func (e *e2e) kindCatalog(t *testing.T) {
	if os.Getenv("EGRESSCONF_E2E_REUSE") == "1" {
		// Iterating on the later checks: use the kept cluster as it is.
		if ok, err := cluster.Exists(e.cluster); err != nil || !ok {
			t.Fatalf("EGRESSCONF_E2E_REUSE=1 but no cluster %s (%v)", e.cluster, err)
		}
		c, err := cluster.Create(context.Background(), e.cluster)
		if err != nil {
			t.Fatal(err)
		}
		if e.cfg, err = c.RESTConfig(); err != nil {
			t.Fatal(err)
		}
		e.cs = kubernetes.NewForConfigOrDie(e.cfg)
		t.Skip("EGRESSCONF_E2E_REUSE=1: catalog run skipped")
	}
	args := []string{"run", "--backend", "kind", "--cluster-name", e.cluster, "--keep-cluster",
		"--reports", e.reports, "--run-id", "e2e-kind-catalog", "--probe", "curl,xds"}
	if img := env("EGRESSCONF_NODE_IMAGE", "local/kind-node:v1.34.4"); img != "" {
		args = append(args, "--node-image", img)
	}
	for _, a := range strings.Fields(env("EGRESSCONF_LOAD_ARCHIVES", "")) {
		args = append(args, "--load-image-archive", a)
	}
	for _, m := range strings.Fields(env("EGRESSCONF_APPLY_MANIFESTS", "")) {
		args = append(args, "--apply-manifest", m)
	}
	args = append(args, e.istioFlags()...)
	out, code, d := e.run(t, "kind-catalog", args...)
	t.Logf("egressconf run --backend kind (whole catalog): exit %d, wall time %s", code, d.Round(time.Second))
	if exists, _ := cluster.Exists(e.cluster); exists {
		c, err := cluster.Create(context.Background(), e.cluster)
		if err != nil {
			t.Fatal(err)
		}
		if e.cfg, err = c.RESTConfig(); err != nil {
			t.Fatal(err)
		}
		e.cs = kubernetes.NewForConfigOrDie(e.cfg)
	}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"== kind cluster " + e.cluster, "== Istio install", "== stand-in deploy", "== cluster DNS override", "== leak check", "kept (kubectl --context kind-" + e.cluster} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(out, "== control-plane probe (port-forward to istiod's xDS)") {
		t.Error("output lacks the control-plane probe's phase: --probe curl,xds did not start it")
	}
	run := readResults(t, filepath.Join(e.reports, "e2e-kind-catalog"))
	e.checkResults(t, run, catalogIDs(t), true)
	checkPredictions(t, run)
	if run.Backend.IstioVersion == "" {
		t.Error("no Istio version in the report")
	}
}

// kindCorpus runs the feature corpus (suites/corpus) on the kept cluster through upstream Envoy,
// with the live control plane's predictions beside each observation. Every ID must be observed
// and pass: the corpus's expectations are Istio's documented behaviour, and Envoy is the check.
// Each prediction must agree or say it is out of model; one that fails is a model bug.
func (e *e2e) kindCorpus(t *testing.T) {
	if e.cs == nil {
		t.Skip("no kept cluster: kind-catalog did not create one")
	}
	corpus, err := filepath.Abs("../../../suites/corpus")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--backend", "kind", "--cluster-name", e.cluster, "--keep-cluster",
		"--catalog", corpus, "--reports", e.reports, "--run-id", "e2e-kind-corpus", "--probe", "curl,xds"}
	// The same archives as kind-catalog: already in the nodes (not loaded again), they make the
	// install profile upstream-envoy, as the cluster was installed.
	for _, a := range strings.Fields(env("EGRESSCONF_LOAD_ARCHIVES", "")) {
		args = append(args, "--load-image-archive", a)
	}
	args = append(args, e.istioFlags()...)
	_, code, d := e.run(t, "kind-corpus", args...)
	t.Logf("egressconf run --backend kind --catalog suites/corpus (reused cluster): exit %d, wall time %s", code, d.Round(time.Second))
	run := readResults(t, filepath.Join(e.reports, "e2e-kind-corpus"))
	c, err := suites.Corpus()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range c.Scenarios {
		for _, st := range s.Spec.Steps {
			for _, x := range st.Expect {
				want[x.ID] = true
			}
		}
	}
	agree, outOfModel := 0, 0
	for _, r := range run.Results {
		if !want[r.ID] {
			t.Errorf("%s: not a corpus ID", r.ID)
			continue
		}
		delete(want, r.ID)
		if r.Oracle != "observed-live-data-plane" || r.Verdict != report.Pass {
			t.Errorf("%s: %s %s %q: %s", r.ID, r.Oracle, r.Verdict, r.Observed, r.Message)
		}
		switch p := r.PredictionBy(backend.OracleLiveControlPlane); {
		case p == nil:
			t.Errorf("%s: no prediction of %s", r.ID, backend.OracleLiveControlPlane)
		case p.Verdict == report.Pass:
			agree++
		case p.Verdict == report.Skip && strings.Contains(p.Message, "out of model"):
			outOfModel++
		default:
			t.Errorf("%s: observed %s %q; the live control plane's prediction %s %q: %s", r.ID, r.Verdict, r.Observed, p.Verdict, p.Observed, p.Message)
		}
	}
	for id := range want {
		t.Errorf("%s: no result", id)
	}
	t.Logf("corpus: %d results; predictions from the live control plane: %d agree, %d out of model", len(run.Results), agree, outOfModel)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

func (e *e2e) existingArgs(runID string, groups ...string) []string {
	args := []string{"run", "--backend", "existing", "--context", "kind-" + e.cluster,
		"--reports", e.reports, "--run-id", runID,
		// the stand-in image is in the node already (loaded by the kind run); CoreDNS may be
		// restarted (the test owns the cluster)
		"--standin-image", standin.DefaultImage, "--restart-coredns",
		// The kept cluster's gateways were installed by the kind run, not by this one: scoped
		// DNS cannot reach them (existing-dns-refusal), so these runs ask for the override.
		"--cluster-dns", "override"}
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	return append(args, e.istioFlags()...)
}

func (e *e2e) existingG1(t *testing.T) {
	out, code, d := e.run(t, "existing-G1", e.existingArgs("e2e-existing-g1", "G1")...)
	t.Logf("egressconf run --backend existing --group G1: exit %d in %s", code, d.Round(time.Second))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"gateway istio-egressgateway@istio-system: present", "G1   deny-namespace", "can run"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	run := readResults(t, filepath.Join(e.reports, "e2e-existing-g1"))
	e.checkResults(t, run, catalogIDs(t, "G1"), true)
	// The override is said before CoreDNS changes, and recorded.
	plan := strings.Index(out, "cluster DNS: --cluster-dns override: while the run lasts every pod of the cluster")
	if plan < 0 || plan > strings.Index(out, "== cluster DNS override") {
		t.Error("the override's plan is not printed before CoreDNS changes")
	}
	if !strings.Contains(run.Backend.ClusterDNS, "every pod of the cluster") {
		t.Errorf("results.json's cluster DNS record: %q", run.Backend.ClusterDNS)
	}
	e.checkRestored(t)
}

// existingDNSRefusal: without --cluster-dns override, a run whose gateways it did not install
// refuses before creating anything, naming the gateway and the flag; CoreDNS is untouched.
func (e *e2e) existingDNSRefusal(t *testing.T) {
	before := corefile(t, e.cs)
	args := e.existingArgs("e2e-dns-refusal", "G1")
	args = slices.DeleteFunc(args, func(a string) bool { return a == "--cluster-dns" || a == "override" })
	out, code, _ := e.run(t, "existing-dns-refusal", args...)
	if code == 0 {
		t.Error("exit 0")
	}
	for _, want := range []string{"istio-system/istio-egressgateway were not installed by this run", "--cluster-dns override"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "== stand-in deploy") || strings.Contains(out, "== cluster DNS override") {
		t.Error("the refused run deployed the stand-in or changed CoreDNS")
	}
	if after := corefile(t, e.cs); after != before {
		t.Errorf("CoreDNS changed:\n%s", after)
	}
	e.checkRestored(t)
}

var seGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

func (e *e2e) existingRefusal(t *testing.T) {
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(e.cfg)
	// G1's first step applies ServiceEntry aliyuncom-ext in istio-system: put one there first.
	se := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": "aliyuncom-ext", "namespace": "istio-system", "labels": map[string]any{"owner": "someone-else"}},
		"spec":     map[string]any{"hosts": []any{"www.aliyun.com"}, "ports": []any{map[string]any{"number": int64(80), "name": "http", "protocol": "HTTP"}}, "resolution": "DNS", "location": "MESH_EXTERNAL"},
	}}
	created, err := dyn.Resource(seGVR).Namespace("istio-system").Create(ctx, se, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dyn.Resource(seGVR).Namespace("istio-system").Delete(ctx, "aliyuncom-ext", metav1.DeleteOptions{})
	out, code, _ := e.run(t, "existing-refusal", e.existingArgs("e2e-existing-refusal", "G1")...)
	if code == 0 {
		t.Errorf("run over a foreign object exited 0")
	}
	if !strings.Contains(out, "refusing to overwrite ServiceEntry istio-system/aliyuncom-ext") {
		t.Errorf("output does not name the refused object")
	}
	run := readResults(t, filepath.Join(e.reports, "e2e-existing-refusal"))
	for _, r := range run.Results {
		if r.Verdict == report.Pass && r.ID != "DENYNS-04" {
			t.Errorf("%s passed although its step was refused", r.ID)
		}
	}
	cur, err := dyn.Resource(seGVR).Namespace("istio-system").Get(ctx, "aliyuncom-ext", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the foreign object is gone: %v", err)
	}
	// istiod writes status (auto-allocated addresses), so compare the generation, spec and labels.
	if cur.GetGeneration() != created.GetGeneration() || !reflect.DeepEqual(cur.Object["spec"], created.Object["spec"]) || !reflect.DeepEqual(cur.GetLabels(), created.GetLabels()) {
		t.Errorf("the foreign object was modified: generation %d -> %d, labels %v, spec %v", created.GetGeneration(), cur.GetGeneration(), cur.GetLabels(), cur.Object["spec"])
	}
	if !strings.Contains(out, "== leak check") || strings.Contains(out, "leak check FAILED") {
		t.Errorf("leak check did not pass")
	}
	e.checkRestored(t)
}

// checkRestored asserts no egressconf trace is left: no labelled namespace, no DNS block, no mesh
// annotation.
func (e *e2e) checkRestored(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	nss, err := e.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		t.Errorf("namespace %s labelled by run %s is left", ns.Name, ns.Labels[fixtures.LabelRun])
	}
	cm, err := e.cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, owners, err := clusterdns.Strip(cm.Data["Corefile"]); err != nil || len(owners) > 0 || cm.Annotations[clusterdns.AnnotationRun] != "" {
		t.Errorf("CoreDNS not restored: owners %v, annotations %v (%v)", owners, cm.Annotations, err)
	}
	mesh, err := e.cs.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mesh.Annotations[live.AnnotationMeshRun] != "" || strings.Contains(mesh.Data["mesh"], "REGISTRY_ONLY") {
		t.Errorf("mesh config not restored: annotations %v\n%s", mesh.Annotations, mesh.Data["mesh"])
	}
}

// api drives the backend through the package: a scenario's setup, a real probe, exec failures,
// log reading and diagnostics.
func (e *e2e) api(t *testing.T) {
	ctx := context.Background()
	to := runner.DefaultTimeouts()
	var progress strings.Builder
	b, err := live.New(ctx, live.Options{
		Name: "existing", Config: e.cfg, RunID: "e2e-api", Timeouts: to,
		CurlImage: env("EGRESSCONF_CURL_IMAGE", "docker.io/local/curl:1"), NginxImage: env("EGRESSCONF_NGINX_IMAGE", "docker.io/local/nginx:1"),
		StandinImage: standin.DefaultImage, RestartCoreDNS: true, Progress: &progress,
		ClusterDNS: clusterdns.ModeOverride, // the kind run's gateways
		Hosts:      builtinHosts(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		e.checkRestored(t)
		t.Log(progress.String())
	}()
	if err := b.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	no := false
	s := &catalog.Scenario{
		Metadata: catalog.Metadata{Name: "api", Group: "GAPI"},
		Spec: catalog.Spec{
			MeshPolicy: "REGISTRY_ONLY", Gateways: []string{"istio-egressgateway"},
			Namespaces: []catalog.Namespace{{Name: "egressconf-api"}},
			Workloads: []catalog.Workload{
				{Name: "sleep", Namespace: "egressconf-api", Fixture: "sleep"},
				{Name: "bare", Namespace: "egressconf-api", Fixture: "sleep", Sidecar: &no},
			},
		},
	}
	start := time.Now()
	if err := b.Setup(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Logf("setup %s", time.Since(start).Round(time.Millisecond))
	defer func() {
		if err := b.Teardown(context.Background(), s); err != nil {
			t.Errorf("Teardown: %v", err)
		}
	}()
	bare, sleep := s.Spec.Workloads[1], s.Spec.Workloads[0]
	if why := b.Unobservable(sleep); why != "" {
		t.Errorf("a sidecar with Envoy is unobservable: %q", why)
	}
	if why := b.Unobservable(fixtures.GatewayWorkload(fixtures.Gateways["istio-egressgateway"])); why != "" {
		t.Errorf("a gateway with Envoy is unobservable: %q", why)
	}
	if why := b.Unobservable(bare); why != "" {
		t.Errorf("a pod without a sidecar is unobservable: %q", why)
	}

	// A real probe: HEAD http://www.aliyun.com from the pod without a sidecar -> 301 from the stand-in.
	before := time.Now()
	req, _ := probe.ParseCurl("curl -I http://www.aliyun.com")
	obs, err := b.Probe(ctx, bare, req)
	if err != nil {
		t.Fatal(err)
	}
	if obs.HTTPCode != 301 || obs.ExitCode != 0 || obs.Headers["location"] != "https://www.aliyun.com/" {
		t.Errorf("probe observed %s %v", obs.Summary(), obs.Headers)
	}
	// HTTPS with the run's CA (CURL_CA_BUNDLE in the fixture).
	req2, _ := probe.ParseCurl("curl -I https://developers.google.com")
	if obs, err := b.Probe(ctx, bare, req2); err != nil || obs.HTTPCode != 200 {
		t.Errorf("https probe: %s %v", obs.Summary(), err)
	}

	// Exec failures are errors, never observations.
	wrongContainer := bare
	wrongContainer.Fixture = "nginx" // the probe execs into container "nginx", which the pod lacks
	if obs, err := b.Probe(ctx, wrongContainer, req); err == nil {
		t.Errorf("probe into a missing container gave an observation: %s", obs.Summary())
	} else {
		t.Logf("missing container: %v", err)
		if !strings.Contains(err.Error(), "probe did not run") {
			t.Errorf("error does not say the probe did not run: %v", err)
		}
	}
	ghost := catalog.Workload{Name: "ghost", Namespace: "egressconf-api", Fixture: "sleep"}
	if _, err := b.Probe(ctx, ghost, req); err == nil {
		t.Error("probe from a workload that is not deployed did not fail")
	}

	// Log reading of a real pod: the stand-in logged the probe, and only lines since `before`.
	pods, err := e.cs.CoreV1().Pods(standin.Namespace).List(ctx, metav1.ListOptions{LabelSelector: standin.LabelName + "=" + standin.AppName})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("stand-in pod: %v", err)
	}
	var lines []string
	deadline := time.Now().Add(to.AccessLog)
	for time.Now().Before(deadline) {
		lines, err = b.PodLog(ctx, standin.Namespace, pods.Items[0].Name, "standin", before)
		if err != nil {
			t.Fatal(err)
		}
		if anyContains(lines, "host=www.aliyun.com", "method=HEAD", "status=301") {
			break
		}
		time.Sleep(to.ProbeInterval)
	}
	if !anyContains(lines, "host=www.aliyun.com", "method=HEAD", "status=301") {
		t.Errorf("stand-in log since the probe lacks the request: %q", lines)
	}
	if later, err := b.PodLog(ctx, standin.Namespace, pods.Items[0].Name, "standin", time.Now().Add(time.Minute)); err != nil || len(later) != 0 {
		t.Errorf("log lines after now: %q %v", later, err)
	}
	// Through the sidecar's Envoy: REGISTRY_ONLY and no ServiceEntry, so Envoy answers 502 itself
	// (route block_all's direct response), and its access log holds the entry of exactly this
	// request (the probe's marker).
	if err := b.Converge(ctx); err != nil {
		t.Fatalf("converge: %v", err)
	}
	obs, err = b.Probe(ctx, sleep, req)
	if err != nil || obs.HTTPCode != 502 || obs.Headers["server"] != "envoy" || obs.Probe == "" {
		t.Errorf("probe through the sidecar: %s %v server=%q marker=%q, want 502 from envoy", obs.Summary(), err, obs.Headers["server"], obs.Probe)
	}
	if err := b.Intercepted(ctx, sleep, []string{obs.Probe}); err != nil {
		t.Errorf("the sidecar did not log the probe's request: %v", err)
	}
	if err := b.Intercepted(ctx, sleep, []string{"c-never-made"}); err == nil {
		t.Error("the interception guard accepted a request the sidecar never saw")
	}
	entries, err := b.AccessLog(ctx, sleep, before)
	if err != nil || !slices.ContainsFunc(entries, func(e outcome.LogEntry) bool {
		return e[outcome.LogFieldProbe] == obs.Probe && e["route_name"] == "block_all" && e["response_code"] == "502"
	}) {
		t.Errorf("sidecar entries %v (%v): want the probe's block_all 502", entries, err)
	}

	// The gateway's logs are read.
	gw := fixtures.GatewayWorkload(fixtures.Gateways["istio-egressgateway"])
	if _, err := b.AccessLog(ctx, gw, before); err != nil {
		t.Errorf("gateway access log: %v", err)
	}
	if _, err := b.AccessLog(ctx, sleep, before); err != nil {
		t.Errorf("sidecar access log: %v", err)
	}
	if _, err := b.AccessLog(ctx, bare, before); err == nil {
		t.Error("access log of a pod without a proxy did not fail")
	}

	// Diagnostics before cleanup.
	dir := filepath.Join(e.reports, "e2e-api-diagnostics")
	_ = os.RemoveAll(dir)
	if err := b.Diagnostics(ctx, dir); err != nil {
		t.Errorf("diagnostics: %v", err)
	}
	for _, f := range []string{"applied.yaml", "pods.txt", "events-egressconf-api.txt", "mesh-config.yaml"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("diagnostics %s: %v", f, err)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "istiod-*.log"))
	dumps, _ := filepath.Glob(filepath.Join(dir, "config_dump-*"))
	proxyLogs, _ := filepath.Glob(filepath.Join(dir, "proxy-*.log"))
	if len(matches) == 0 || len(dumps) < 2 || len(proxyLogs) < 2 {
		t.Errorf("diagnostics: istiod logs %v, config dumps %v, proxy logs %v", matches, dumps, proxyLogs)
	}
	applied, _ := os.ReadFile(filepath.Join(dir, "applied.yaml"))
	if !strings.Contains(string(applied), "name: egressconf-api") || !strings.Contains(string(applied), "kind: Deployment") {
		t.Errorf("applied.yaml lacks the scenario's objects")
	}
}

func anyContains(lines []string, subs ...string) bool {
	for _, l := range lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// sigint interrupts a run in the middle of a scenario and checks it cleaned up after itself.
func (e *e2e) sigint(t *testing.T) {
	cmd := exec.Command(e.bin, e.existingArgs("e2e-sigint", "G1", "G7")...)
	var once sync.Once
	var sentAt time.Time
	out, code, d := e.start(t, "sigint", cmd, func(line string) {
		// Interrupt once the first scenario's first step has been applied.
		if strings.Contains(line, "step 1/") {
			once.Do(func() {
				sentAt = time.Now()
				_ = cmd.Process.Signal(os.Interrupt)
			})
		}
	})
	if sentAt.IsZero() {
		t.Fatalf("the run never reached a step (exit %d)", code)
	}
	t.Logf("SIGINT sent; egressconf exited %d after %s, %s after the signal", code, d.Round(time.Second), time.Since(sentAt).Round(time.Second))
	if code == 0 {
		t.Error("an interrupted run exited 0")
	}
	for _, want := range []string{"teardown", "== cleanup of run e2e-sigint", "== leak check"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "leak check FAILED") {
		t.Error("leak check failed after SIGINT")
	}
	e.checkRestored(t)
	// Nothing of the run is left in any namespace.
	ctx := context.Background()
	for _, ns := range []string{"default", "demo-frontend", "otherns", "istio-system", standin.Namespace} {
		cms, err := e.cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=e2e-sigint"})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if cms != nil && len(cms.Items) > 0 {
			t.Errorf("%d ConfigMaps of the run left in %s", len(cms.Items), ns)
		}
		pods, _ := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=e2e-sigint"})
		if pods != nil && len(pods.Items) > 0 {
			t.Errorf("%d pods of the run left in %s", len(pods.Items), ns)
		}
	}
}

// missingGateway removes the egressgateway-a Service for a run of G2: the scenario must be skipped
// with the reason, and the plan must say so.
func (e *e2e) missingGateway(t *testing.T) {
	ctx := context.Background()
	svcs := e.cs.CoreV1().Services("istio-egress")
	svc, err := svcs.Get(ctx, "egressgateway-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		svc.ResourceVersion, svc.UID, svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", "", "", nil
		if _, err := svcs.Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
			t.Errorf("restore the gateway Service: %v", err)
		}
	}()
	out, code, _ := e.run(t, "existing-missing-gateway", e.existingArgs("e2e-missing-gateway", "G2")...)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(out, "gateway egressgateway-a@istio-egress: missing (no Service istio-egress/egressgateway-a)") ||
		!strings.Contains(out, "G2   etp-http                         cannot run: egress gateway egressgateway-a@istio-egress missing") {
		t.Error("the plan does not say G2 cannot run and why")
	}
	run := readResults(t, filepath.Join(e.reports, "e2e-missing-gateway"))
	if len(run.Results) == 0 {
		t.Fatal("no results")
	}
	for _, r := range run.Results {
		if r.Verdict != report.Skip || !strings.Contains(r.Message, "egress gateway egressgateway-a@istio-egress missing") {
			t.Errorf("%s: %s %q, want skipped for the missing gateway", r.ID, r.Verdict, r.Message)
		}
	}
	e.checkRestored(t)
}

// localcluster runs G1 on the local cluster with --install-istio and --load-command: Istio installed
// through Helm there, the stand-in image loaded by the command, all of it removed again.
func (e *e2e) localcluster(t *testing.T) {
	kc := os.Getenv("EGRESSCONF_LOCALCLUSTER_KUBECONFIG")
	if kc == "" {
		t.Skip("EGRESSCONF_LOCALCLUSTER_KUBECONFIG not set")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	// Without --cluster-dns the run installs its gateways and scopes DNS to its own pods.
	dns := newDNSScope(t, cfg, cs, "e2e-localcluster")
	args := []string{"run", "--backend", "existing", "--kubeconfig", kc, "--install-istio",
		"--load-command", env("EGRESSCONF_LOCALCLUSTER_LOAD", "load-images.sh"), "--restart-coredns",
		"--group", "G1", "--reports", e.reports, "--run-id", "e2e-localcluster",
		// The images are imported by the load command, not given as archives: name the profile.
		"--istio-profile", "upstream-envoy"}
	args = append(args, e.istioFlags()...)
	out, code, d := e.start(t, "localcluster", exec.Command(e.bin, args...), func(line string) {
		// The first step: the run's fixtures and gateways are up. The check runs while the
		// output waits, and proves by the run's stand-in Service that the run was still on.
		if strings.Contains(line, "step 1/") {
			dns.during()
		}
	})
	t.Logf("egressconf run --backend existing --install-istio on the local cluster: exit %d in %s", code, d.Round(time.Second))
	dns.verify(t)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"helm install istio-system/istiod", "== stand-in image load", "== scoped DNS: the run's pods resolve through the stand-in", "cluster DNS: --cluster-dns scoped", "Istio uninstall", "== leak check"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "== cluster DNS override") {
		t.Error("CoreDNS was overridden without --cluster-dns override")
	}
	run := readResults(t, filepath.Join(e.reports, "e2e-localcluster"))
	e.checkResults(t, run, catalogIDs(t, "G1"), false)
	if !strings.Contains(run.Backend.ClusterDNS, "--cluster-dns scoped") || !strings.Contains(run.Backend.ClusterDNS, "kube-system/coredns is not changed") {
		t.Errorf("results.json's cluster DNS record: %q", run.Backend.ClusterDNS)
	}
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "istio-system", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("istio-system left on the local cluster (%v)", err)
	}
}

// keep runs G1 with --keep: its objects, the stand-in, the CoreDNS override and the mesh config stay
// (the cluster is deleted next).
func (e *e2e) keep(t *testing.T) {
	out, code, _ := e.run(t, "existing-keep", append(e.existingArgs("e2e-keep", "G1"), "--keep")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "--keep: leaving") || strings.Contains(out, "== leak check") {
		t.Error("output does not say what --keep left, or a leak check ran")
	}
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: fixtures.LabelRun + "=e2e-keep"}
	nss, _ := e.cs.CoreV1().Namespaces().List(ctx, sel)
	pods, _ := e.cs.CoreV1().Pods("demo-frontend").List(ctx, sel)
	if nss == nil || len(nss.Items) < 2 || pods == nil || len(pods.Items) < 2 {
		t.Errorf("--keep did not keep the namespaces and pods")
	}
	cm, err := e.cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil || cm.Annotations[clusterdns.AnnotationRun] != "e2e-keep" {
		t.Errorf("--keep did not keep the CoreDNS override (%v)", err)
	}
	mesh, err := e.cs.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio", metav1.GetOptions{})
	if err != nil || mesh.Annotations[live.AnnotationMeshRun] != "e2e-keep" {
		t.Errorf("--keep did not keep the mesh config change (%v)", err)
	}
}

// kindCreateDelete runs a group on a new kind cluster without --keep-cluster: the run deletes it.
func (e *e2e) kindCreateDelete(t *testing.T) {
	name := e.cluster + "-2"
	args := []string{"run", "--backend", "kind", "--cluster-name", name, "--group", "G7",
		"--reports", e.reports, "--run-id", "e2e-kind-create-delete"}
	if img := env("EGRESSCONF_NODE_IMAGE", "local/kind-node:v1.34.4"); img != "" {
		args = append(args, "--node-image", img)
	}
	for _, a := range strings.Fields(env("EGRESSCONF_LOAD_ARCHIVES", "")) {
		args = append(args, "--load-image-archive", a)
	}
	args = append(args, e.istioFlags()...)
	out, code, d := e.run(t, "kind-create-delete", args...)
	t.Logf("egressconf run --backend kind --group G7 (create, run, delete): exit %d in %s", code, d.Round(time.Second))
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(out, "== kind cluster "+name+" delete") {
		t.Error("output does not show the cluster's deletion")
	}
	if ok, err := cluster.Exists(name); err != nil || ok {
		_ = cluster.Delete(context.Background(), name)
		t.Errorf("cluster %s still exists after the run (%v)", name, err)
	}
}

// checkPredictions asserts that a --probe curl,xds run carries, for every ID, the observation
// (the result's own oracle, checked by checkResults) and the live istiod's prediction made on the
// same converged state: a pass, fail or a skip with its reason, never missing. DENYNS-05 needs
// NetworkPolicy, which the xDS does not hold, and DENYNS-06 checks the mesh with that policy
// applied: their predictions are skipped for the capability (as on the offline backend).
func checkPredictions(t *testing.T, run *report.Run) {
	t.Helper()
	if len(run.Predictions) != 1 || run.Predictions[0].Oracle != backend.OracleLiveControlPlane {
		t.Errorf("the run's prediction sources %+v, want the live control plane's", run.Predictions)
	}
	agree := 0
	for _, r := range run.Results {
		p := r.PredictionBy(backend.OracleLiveControlPlane)
		if p == nil {
			t.Errorf("%s: no prediction of %s", r.ID, backend.OracleLiveControlPlane)
			continue
		}
		switch {
		case r.ID == "DENYNS-05" || r.ID == "DENYNS-06":
			if p.Verdict != report.Skip || p.Capability != backend.CapNetworkPolicy {
				t.Errorf("%s prediction %s %q %s, want a skip for capability %s", r.ID, p.Verdict, p.Observed, p.Message, backend.CapNetworkPolicy)
			}
		case p.Verdict == report.Error:
			t.Errorf("%s: the prediction erred: %s", r.ID, p.Message)
		case p.Verdict == r.Verdict && p.Observed == r.Observed:
			agree++
		default:
			t.Logf("%s: observed %s %q, predicted %s %q (%s)", r.ID, r.Verdict, r.Observed, p.Verdict, p.Observed, p.Message)
		}
		for _, c := range r.Checks {
			if c.Prediction == nil {
				t.Errorf("%s: check %q has no prediction", r.ID, c.Description)
			}
		}
	}
	t.Logf("live control plane's predictions: %d of %d agree with the observations", agree, len(run.Results))
}
