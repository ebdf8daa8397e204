package istioinstall

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/accesslog"
	"github.com/egressconf/egressconf/pkg/outcome"
)

func TestAccessLogFormatHasEveryLogField(t *testing.T) {
	s, err := AccessLogFormatJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	// Every field an expectation can read, plus the probe's marker.
	if len(m) != len(outcome.LogFields)+1 || m[outcome.LogFieldProbe] != "%REQ(X-Egressconf-Probe)%" {
		t.Errorf("%d keys (LogFields has %d), marker %q", len(m), len(outcome.LogFields), m[outcome.LogFieldProbe])
	}
	for _, f := range outcome.LogFields {
		if !strings.HasPrefix(m[f], "%") {
			t.Errorf("field %s: operator %q", f, m[f])
		}
	}
	// A line Envoy writes in this format is an access-log entry for the parser.
	line := strings.NewReplacer(`"%START_TIME%"`, `"2026-01-01T00:00:00.000Z"`, `"%UPSTREAM_CLUSTER_RAW%"`, `"outbound|80||www.aliyun.com"`).Replace(s)
	e, ok, err := accesslog.ParseLine(line)
	if err != nil || !ok || e["upstream_cluster"] != "outbound|80||www.aliyun.com" {
		t.Errorf("parser reads %v %v %v", e, ok, err)
	}
}

// chartsDir is Istio's manifests/charts of the istio.io/istio module this module requires.
func chartsDir(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Skipf("istio.io/istio module not available: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "manifests", "charts")
}

// render renders a chart of the local charts with the values, client-side (no cluster).
func render(t *testing.T, o *Options, spec chartSpec, name, ns string, values map[string]any) []map[string]any {
	t.Helper()
	ch, err := o.loadChart(spec)
	if err != nil {
		t.Skipf("charts: %v", err)
	}
	in := action.NewInstall(&action.Configuration{})
	in.DryRun, in.ClientOnly, in.ReleaseName, in.Namespace = true, true, name, ns
	in.KubeVersion = &chartutil.KubeVersion{Version: "v1.34.4", Major: "1", Minor: "34"}
	if len(o.Labels) > 0 {
		in.PostRenderer = labeler(o.Labels)
	}
	rel, err := in.Run(ch, values)
	if err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	var objs []map[string]any
	for _, doc := range strings.Split(rel.Manifest, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("manifest of %s: %v", name, err)
		}
		if len(m) > 0 {
			objs = append(objs, m)
		}
	}
	return objs
}

func find(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		if o["kind"] == kind && md["name"] == name {
			return o
		}
	}
	return nil
}

func TestGatewayChartRendersTheFixtureGateways(t *testing.T) {
	o := &Options{ChartsDir: chartsDir(t), ImagePullPolicy: "IfNotPresent", Labels: map[string]string{"egressconf.io/run": "r1"}}
	o.defaults()
	for _, name := range fixtures.GatewayNames() {
		g := fixtures.Gateways[name]
		objs := render(t, o, gatewayChart, g.Name, g.Namespace, o.GatewayValues(g))
		d := find(objs, "Deployment", g.Name)
		if d == nil {
			t.Fatalf("%s: no Deployment", name)
		}
		podLabels := d["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
		for k, v := range g.Labels {
			if podLabels[k] != v {
				t.Errorf("%s: pod label %s=%v, want %s", name, k, podLabels[k], v)
			}
		}
		if d["metadata"].(map[string]any)["labels"].(map[string]any)["egressconf.io/run"] != "r1" {
			t.Errorf("%s: post-renderer label missing", name)
		}
		svc := find(objs, "Service", g.Name)
		if svc == nil {
			t.Fatalf("%s: no Service", name)
		}
		spec := svc["spec"].(map[string]any)
		if spec["type"] != "ClusterIP" {
			t.Errorf("%s: Service type %v", name, spec["type"])
		}
		ports := map[string]string{}
		for _, p := range spec["ports"].([]any) {
			pm := p.(map[string]any)
			ports[pm["name"].(string)] = jsonString(pm["port"]) + "->" + jsonString(pm["targetPort"])
		}
		for _, p := range g.Ports {
			if got := ports[p.Name]; got != jsonString(p.Number)+"->"+jsonString(p.TargetPort) {
				t.Errorf("%s: port %s = %q", name, p.Name, got)
			}
		}
		if find(objs, "HorizontalPodAutoscaler", g.Name) != nil {
			t.Errorf("%s: autoscaling not disabled", name)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestIstiodChartRendersTheMeshConfig(t *testing.T) {
	o := &Options{ChartsDir: chartsDir(t), Hub: "docker.io/local", Tag: "1.31-dev"}
	o.defaults()
	values, err := o.IstiodValues()
	if err != nil {
		t.Fatal(err)
	}
	objs := render(t, o, istiodChart, ReleaseIstiod, Namespace, values)
	cm := find(objs, "ConfigMap", "istio")
	if cm == nil {
		t.Fatal("no ConfigMap istio")
	}
	var mesh map[string]any
	if err := yaml.Unmarshal([]byte(cm["data"].(map[string]any)["mesh"].(string)), &mesh); err != nil {
		t.Fatal(err)
	}
	if mesh["accessLogFile"] != "/dev/stdout" || mesh["accessLogEncoding"] != "JSON" {
		t.Errorf("mesh %v", mesh)
	}
	want, _ := AccessLogFormatJSON()
	if mesh["accessLogFormat"] != want {
		t.Errorf("accessLogFormat %v", mesh["accessLogFormat"])
	}
	d := find(objs, "Deployment", "istiod")
	if d == nil {
		t.Fatal("no istiod Deployment")
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), "docker.io/local/pilot:1.31-dev") {
		t.Errorf("istiod image not from the hub/tag override: %s", b)
	}
	if find(objs, "HorizontalPodAutoscaler", "istiod") != nil {
		t.Error("istiod autoscaling not disabled")
	}
}

func TestLabelerKeepsEveryObject(t *testing.T) {
	in := bytes.NewBufferString("---\n# Source: x\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  labels:\n    app: b\n")
	out, err := labeler{"egressconf.io/run": "r"}.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Count(s, "egressconf.io/run: r") != 2 || !strings.Contains(s, "app: b") {
		t.Errorf("post-rendered:\n%s", s)
	}
}

func TestManifestCRDsOfTheBaseChart(t *testing.T) {
	o := &Options{ChartsDir: chartsDir(t)}
	o.defaults()
	ch, err := o.loadChart(baseChart)
	if err != nil {
		t.Skipf("charts: %v", err)
	}
	in := action.NewInstall(&action.Configuration{})
	in.DryRun, in.ClientOnly, in.ReleaseName, in.Namespace = true, true, ReleaseBase, Namespace
	rel, err := in.Run(ch, o.BaseValues())
	if err != nil {
		t.Fatal(err)
	}
	crds := manifestCRDs(rel.Manifest)
	if len(crds) < 10 || !slices.Contains(crds, "serviceentries.networking.istio.io") || !slices.Contains(crds, "authorizationpolicies.security.istio.io") {
		t.Errorf("CRDs of the base chart: %v", crds)
	}
}
