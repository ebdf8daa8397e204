package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/backend"
)

func sampleRun() *Run {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	return &Run{
		ID: "r1", Started: t0, Finished: t0.Add(3 * time.Second),
		Backend:        backend.Info{Name: "sim", Oracle: backend.OracleOffline, IstioVersion: "1.31"},
		Implementation: Implementation{Organization: "acme", Project: "mesh", Version: "v1"},
		Results: []Result{
			{ID: "DENYNS-01", Group: "G1", Scenario: "deny-namespace", Profile: "istio-native", Kind: "documented", From: "sleep@demo-frontend", Request: "-I http://www.aliyun.com", Expected: "301", Observed: "301", Verdict: Pass, Backend: "sim", Oracle: backend.OracleOffline},
			{ID: "DENYNS-02", Group: "G1", Scenario: "deny-namespace", Profile: "istio-native", Kind: "derived", Expected: "log upstream_cluster=outbound|80||www.aliyun.com", Observed: "none", Verdict: Fail, Message: "no entry", Diagnostics: "reports/r1/diagnostics/DENYNS-02"},
			{ID: "DENYNS-05", Group: "G1", Scenario: "deny-namespace", Profile: "istio-native", Kind: "derived", Verdict: Skip, Message: "needs networkpolicy"},
			{ID: "ETP-BASE-01", Group: "G2", Scenario: "etp-http", Profile: "asm-egress-traffic-policy", Kind: "documented", Verdict: Error, Message: "exec failed"},
		},
	}
}

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, sampleRun()); err != nil {
		t.Fatal(err)
	}
	var parsed junitSuites
	if err := xml.Unmarshal(b.Bytes(), &parsed); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if parsed.Tests != 4 || parsed.Failures != 1 || parsed.Errors != 1 || parsed.Skipped != 1 || len(parsed.Suites) != 2 {
		t.Fatalf("%+v", parsed)
	}
	c := parsed.Suites[0].Cases[1]
	if !strings.HasPrefix(c.Name, "DENYNS-02") || c.Failure == nil || c.Failure.Message != "no entry" {
		t.Errorf("case %+v", c)
	}
	if !strings.Contains(b.String(), `name="oracle" value="predicted-offline-control-plane"`) {
		t.Error("oracle property missing")
	}
}

func TestSummary(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, sampleRun()); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, w := range []string{"**FAILED**", "not a conformance claim", "| ID | from | request | expected | observed | verdict | time |",
		`outbound\|80\|\|www.aliyun.com`, "**FAIL**", "**ERROR**", "diagnostics: `reports/r1/diagnostics/DENYNS-02`"} {
		if !strings.Contains(s, w) {
			t.Errorf("summary lacks %q:\n%s", w, s)
		}
	}
}

func TestConformanceReport(t *testing.T) {
	cr := NewConformanceReport(sampleRun())
	if cr.APIVersion != ConformanceAPIVersion || cr.Oracle != "predicted-offline-control-plane" || cr.Implementation.Organization != "acme" {
		t.Fatalf("%+v", cr)
	}
	if len(cr.Profiles) != 2 {
		t.Fatalf("profiles %+v", cr.Profiles)
	}
	asm, native := cr.Profiles[0], cr.Profiles[1]
	if asm.Name != "asm-egress-traffic-policy" || asm.Core.Errored != 1 || asm.Core.Result != "failure" {
		t.Errorf("asm %+v", asm)
	}
	if native.Core.Passed != 1 || native.Core.Failed != 1 || len(native.SkippedTests) != 1 || native.SkippedTests[0].Reason != "needs networkpolicy" {
		t.Errorf("native %+v", native)
	}
	dir := t.TempDir()
	paths, err := WriteAll(dir, sampleRun())
	if err != nil || len(paths) != 5 {
		t.Fatal(paths, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, ConformanceFile))
	var back ConformanceReport
	if err := yaml.Unmarshal(data, &back); err != nil || back.Summary.Result != "failure" {
		t.Fatalf("%v %+v", err, back.Summary)
	}
}

// How NetworkPolicy enforcement was decided (the CNI --network-policy auto found, the self-test's
// result) is recorded in every report the run writes.
func TestNetworkPolicyRecordedInEveryReport(t *testing.T) {
	run := sampleRun()
	const np = "auto: enforcing CNI kube-router (DaemonSet kube-system/kube-router, 1/1 ready); self-test: a deny-all egress policy was proven to block, the enforcer rejects (curl exit 7, refused)"
	run.Backend.NetworkPolicy = np
	dir := t.TempDir()
	if _, err := WriteAll(dir, run); err != nil {
		t.Fatal(err)
	}
	read := func(f string) string {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if s := read(SummaryFile); !strings.Contains(s, "NetworkPolicy: "+np+"\n") {
		t.Errorf("%s lacks the NetworkPolicy record:\n%s", SummaryFile, s)
	}
	var cr ConformanceReport
	if err := yaml.Unmarshal([]byte(read(ConformanceFile)), &cr); err != nil || cr.NetworkPolicy != np {
		t.Errorf("%s: networkPolicy %q (%v)", ConformanceFile, cr.NetworkPolicy, err)
	}
	var back Run
	if err := json.Unmarshal([]byte(read(ResultsFile)), &back); err != nil || back.Backend.NetworkPolicy != np {
		t.Errorf("%s: backend NetworkPolicy %q (%v)", ResultsFile, back.Backend.NetworkPolicy, err)
	}
	if j := read(JUnitFile); !strings.Contains(j, `name="networkPolicy" value="auto: enforcing CNI kube-router`) {
		t.Errorf("%s lacks the networkPolicy property:\n%s", JUnitFile, j)
	}
}

// Whose DNS the run pointed at the stand-in (--cluster-dns) is recorded in every report.
func TestClusterDNSRecordedInEveryReport(t *testing.T) {
	run := sampleRun()
	const dns = "--cluster-dns override: while the run lasts every pod of the cluster, in every namespace, resolves httpbin.org to the stand-in internet.egressconf-internet.svc.cluster.local (10.96.1.2)"
	run.Backend.ClusterDNS = dns
	dir := t.TempDir()
	if _, err := WriteAll(dir, run); err != nil {
		t.Fatal(err)
	}
	read := func(f string) string {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if s := read(SummaryFile); !strings.Contains(s, "Cluster DNS: "+dns+"\n") {
		t.Errorf("%s lacks the cluster DNS record:\n%s", SummaryFile, s)
	}
	var cr ConformanceReport
	if err := yaml.Unmarshal([]byte(read(ConformanceFile)), &cr); err != nil || cr.ClusterDNS != dns {
		t.Errorf("%s: clusterDNS %q (%v)", ConformanceFile, cr.ClusterDNS, err)
	}
	var back Run
	if err := json.Unmarshal([]byte(read(ResultsFile)), &back); err != nil || back.Backend.ClusterDNS != dns {
		t.Errorf("%s: backend ClusterDNS %q (%v)", ResultsFile, back.Backend.ClusterDNS, err)
	}
	if j := read(JUnitFile); !strings.Contains(j, `name="clusterDNS" value="--cluster-dns override: while the run lasts every pod of the cluster`) {
		t.Errorf("%s lacks the clusterDNS property:\n%s", JUnitFile, j)
	}
}

// Every adaptation (object, field, change) is in every report; JUnit has it on its group's suite.
func TestAdaptationsRecordedInEveryReport(t *testing.T) {
	run := sampleRun()
	a := Adaptation{Group: "G1", File: "g01-deny-namespace/dr.yaml", Object: "DestinationRule istio-system/originate",
		Field: "spec.trafficPolicy.tls.credentialName", Change: `added "configmap://istio-system/egressconf-standin-ca"`}
	run.Adaptations = []Adaptation{a}
	const line = `g01-deny-namespace/dr.yaml: DestinationRule istio-system/originate spec.trafficPolicy.tls.credentialName: added "configmap://istio-system/egressconf-standin-ca"`
	if a.String() != line {
		t.Fatalf("String() = %s", a.String())
	}
	dir := t.TempDir()
	if _, err := WriteAll(dir, run); err != nil {
		t.Fatal(err)
	}
	read := func(f string) string {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if s := read(SummaryFile); !strings.Contains(s, "- "+line+"\n") {
		t.Errorf("%s lacks the adaptation:\n%s", SummaryFile, s)
	}
	if h := read(HTMLFile); !strings.Contains(h, "<li>"+html.EscapeString(line)+"</li>") {
		t.Errorf("%s lacks the adaptation", HTMLFile)
	}
	var cr ConformanceReport
	if err := yaml.Unmarshal([]byte(read(ConformanceFile)), &cr); err != nil || len(cr.Adaptations) != 1 || cr.Adaptations[0] != a {
		t.Errorf("%s: adaptations %v (%v)", ConformanceFile, cr.Adaptations, err)
	}
	var back Run
	if err := json.Unmarshal([]byte(read(ResultsFile)), &back); err != nil || len(back.Adaptations) != 1 || back.Adaptations[0] != a {
		t.Errorf("%s: adaptations %v (%v)", ResultsFile, back.Adaptations, err)
	}
	var parsed junitSuites
	if err := xml.Unmarshal([]byte(read(JUnitFile)), &parsed); err != nil {
		t.Fatal(err)
	}
	for _, s := range parsed.Suites {
		n := 0
		for _, p := range s.Properties {
			if p.Name == "adaptation" && p.Value == line {
				n++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[strings.HasPrefix(s.Name, "G1 ")]; n != want {
			t.Errorf("JUnit suite %s: %d adaptation properties, want %d", s.Name, n, want)
		}
	}
}
