package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/internal/procstat"
	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/suites"
)

func builtin(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runAll(t testing.TB, b *sim.Backend, scenarios ...*catalog.Scenario) map[string]report.Result {
	t.Helper()
	r := runner.New(runner.Options{Backend: b, Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true})})
	for _, s := range scenarios {
		if err := r.RunScenario(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]report.Result{}
	for _, res := range r.Results() {
		out[res.ID] = res
	}
	return out
}

// TestCatalogAgreesWithTheDocuments runs every expectation of the built-in catalog against Istio's
// control plane: each must agree with its document, except DENYNS-05, which needs a CNI that
// enforces NetworkPolicy and is skipped with that reason, and DENYNS-06, which checks the mesh
// with that NetworkPolicy in place and is skipped because it was not applied.
func TestCatalogAgreesWithTheDocuments(t *testing.T) {
	c := builtin(t)
	got := runAll(t, sim.New(), c.Scenarios...)
	ids := c.IDs()
	if len(ids) != 62 || len(got) != len(ids) {
		t.Fatalf("%d IDs, %d results; want 62 of each", len(ids), len(got))
	}
	for _, id := range ids {
		res := got[id]
		want := report.Pass
		if id == "DENYNS-05" || id == "DENYNS-06" {
			want = report.Skip
		}
		if res.Verdict != want {
			t.Errorf("%s: %s, want %s: %s", id, res.Verdict, want, res.Message)
		}
		if res.Oracle != "predicted-offline-control-plane" {
			t.Errorf("%s: oracle %s", id, res.Oracle)
		}
	}
	if !strings.Contains(got["DENYNS-05"].Message, "networkpolicy") {
		t.Errorf("DENYNS-05 skip reason: %q", got["DENYNS-05"].Message)
	}
	if m := got["DENYNS-06"].Message; !strings.Contains(m, "networkpolicy-demo-frontend-egress.yaml was not applied") || got["DENYNS-06"].Capability != "networkpolicy" {
		t.Errorf("DENYNS-06 skip reason: %q", m)
	}
}

func group(t testing.TB, c *catalog.Catalog, g string) *catalog.Scenario {
	t.Helper()
	s, err := c.Group(g)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTracesFollowTheDocumentedPath checks the hops behind a few results, not just the status.
func TestTracesFollowTheDocumentedPath(t *testing.T) {
	c := builtin(t)
	cases := []struct {
		group, from, curl string
		want              []string
	}{
		// BigBang: sidecar -> gateway over mTLS (SNI from the DestinationRule subset) -> TLS origination.
		{"G9", "sleep@default", "curl -I http://developers.google.com", []string{
			"sleep@default: http 203.0.113.10:80",
			"cluster \"outbound|80|google|istio-egressgateway.istio-system.svc.cluster.local\"",
			"istio-egressgateway@istio-system: http 10.244.0.",
			"sni=\"developers.google.com\" tls=mtls",
			"external https://developers.google.com:443 sni=\"developers.google.com\"",
		}},
		// ASM httpsUpgrade: the gateway originates TLS on 443 for a plain HTTP request.
		{"G3", "sleep-a@mytest", "curl -s http://httpbin.org/anything", []string{
			"egressgateway-a@istio-egress",
			"external https://httpbin.org:443",
		}},
		// BB-TLS-02: sleep-google to yahoo over TLS is reset by the network RBAC filter at the gateway.
		{"G13", "sleep-google@otherns", "curl -I https://developer.yahoo.com", []string{
			"network RBAC denied",
			"ns[istio-system]-policy[external-deny-developer-yahoo-com]-rule[0]",
		}},
	}
	for _, tc := range cases {
		b := sim.New()
		runAll(t, b, group(t, c, tc.group))
		trace := strings.Join(b.Trace(tc.from, tc.curl), "\n")
		if trace == "" {
			t.Fatalf("%s: no trace for %s %s", tc.group, tc.from, tc.curl)
		}
		for _, w := range tc.want {
			if !strings.Contains(trace, w) {
				t.Errorf("%s %s: trace lacks %q:\n%s", tc.group, tc.curl, w, trace)
			}
		}
	}
}

// TestModelCanDisagree: without the AuthorizationPolicy the gateway lets the request through, so
// the documented 403 is a failure; the backend does not simply agree.
func TestModelCanDisagree(t *testing.T) {
	c := builtin(t)
	s := *group(t, c, "G1")
	steps := append([]catalog.Step(nil), s.Spec.Steps...)
	for i := range steps {
		var keep []catalog.Resources
		for _, r := range steps[i].Apply {
			if !strings.HasPrefix(r.File, "authorizationpolicy") {
				keep = append(keep, r)
			}
		}
		steps[i].Apply = keep
	}
	s.Spec.Steps = steps
	got := runAll(t, sim.New(), &s)
	if r := got["DENYNS-03"]; r.Verdict != report.Fail || !strings.Contains(r.Message, "observed 301") {
		t.Fatalf("DENYNS-03 without its policy: %s %q, want a fail observing 301", r.Verdict, r.Message)
	}
	if r := got["DENYNS-01"]; r.Verdict != report.Pass {
		t.Fatalf("DENYNS-01: %s %s", r.Verdict, r.Message)
	}
}

// TestUntranslatedASMPolicyIsRefused: an ASMEgressTrafficPolicy reaching the offline backend as is
// fails the step: every expectation after it is an error, never a pass.
func TestUntranslatedASMPolicyIsRefused(t *testing.T) {
	c := builtin(t)
	r := runner.New(runner.Options{Backend: sim.New()})
	if err := r.RunScenario(context.Background(), group(t, c, "G2")); err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results() {
		if res.ID == "ETP-HTTP-02" && (res.Verdict != report.Error || !strings.Contains(res.Message, "no controller serves ASMEgressTrafficPolicy")) {
			t.Fatalf("ETP-HTTP-02: %s %q", res.Verdict, res.Message)
		}
	}
}

// BenchmarkCatalog measures the whole catalog on the offline backend (make bench).
func BenchmarkCatalog(b *testing.B) {
	c := builtin(b)
	// Warm: the first control-plane build initialises Istio's schemas and registries.
	runAll(b, sim.New(), c.Scenarios[0])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := runAll(b, sim.New(), c.Scenarios...)
		if len(got) != 62 {
			b.Fatalf("%d results", len(got))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(procstat.PeakRSS())/(1<<20), "peak-RSS-MiB")
}

// TestADSAgreesWithGenerated reads every proxy's xDS over a real ADS stream (pkg/xdsclient, the
// control-plane probe's client) from the control plane served on loopback gRPC: every expectation
// must come out exactly as when the xDS is taken from the generator directly.
func TestADSAgreesWithGenerated(t *testing.T) {
	c := builtin(t)
	direct := runAll(t, sim.New(), c.Scenarios...)
	viaADS := runAll(t, sim.New(sim.WithADS()), c.Scenarios...)
	for _, id := range c.IDs() {
		d, a := direct[id], viaADS[id]
		if d.Verdict != a.Verdict || d.Observed != a.Observed {
			t.Errorf("%s: generated %s %q, over ADS %s %q (%s)", id, d.Verdict, d.Observed, a.Verdict, a.Observed, a.Message)
		}
	}
}

// TestDeleteOfAFileNotAppliedIsAnError: an object already gone is not an error for a delete
// (pkg/runner's TestLaterFileUpdatesAnObject), but a file never applied, or deleted already, is:
// the same refusal as validate's.
func TestDeleteOfAFileNotAppliedIsAnError(t *testing.T) {
	b := sim.New()
	se := &unstructured.Unstructured{}
	se.SetAPIVersion("networking.istio.io/v1")
	se.SetKind("ServiceEntry")
	se.SetNamespace("default")
	se.SetName("x")
	m := backend.Manifest{Key: "a.yaml", Objects: []*unstructured.Unstructured{se}}
	ctx := context.Background()
	if err := b.Delete(ctx, m); err == nil || !strings.Contains(err.Error(), "a.yaml was not applied") {
		t.Errorf("delete of a file never applied: %v", err)
	}
	if err := b.Apply(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, m); err == nil {
		t.Error("a second delete of the same file: no error")
	}
}

// TestCatalogDeclaresANewHost: a catalog (testdata/newhost) declares its own external host on
// ports 8080 (http) and 8443 (https, HTTP/1.1 only) in its hosts.yaml, and a redirecting host in a
// scenario's spec.hosts; the offline backend answers for them through a ServiceEntry with no
// code of its own knowing them.
func TestCatalogDeclaresANewHost(t *testing.T) {
	c, err := catalog.LoadPaths("testdata/newhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := runAll(t, sim.New(), c.Scenarios...)
	for _, id := range c.IDs() {
		if res := got[id]; res.Verdict != report.Pass {
			t.Errorf("%s: %s: %s", id, res.Verdict, res.Message)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d results, want 4", len(got))
	}
}

// TestUndeclaredHostIsOutOfModel: a name that is neither an external host of the scenario nor an
// in-cluster name would be resolved by the cluster's DNS, which the offline backend does not model.
func TestUndeclaredHostIsOutOfModel(t *testing.T) {
	c, err := catalog.LoadPaths("testdata/newhost")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Scenarios[0]
	b := sim.New()
	ctx := context.Background()
	if err := b.Setup(ctx, s); err != nil {
		t.Fatal(err)
	}
	defer b.Teardown(ctx, s)
	w, _ := s.Workload("sleep@demo")
	req, err := probe.ParseCurl("curl http://www.aliyun.com/")
	if err != nil {
		t.Fatal(err)
	}
	var oom *outcome.OutOfModelError
	if _, err := b.Probe(ctx, w, req); !errors.As(err, &oom) || !strings.Contains(err.Error(), "www.aliyun.com") {
		t.Errorf("a host of another catalog: %v, want out of model", err)
	}
}
