package istioinstall

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestParseProfile(t *testing.T) {
	for in, want := range map[string]Profile{"": ProfileIstio, "istio": ProfileIstio, "upstream-envoy": ProfileUpstreamEnvoy} {
		got, err := ParseProfile(in)
		if err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Istio", "upstream", "upstream_envoy", " istio"} {
		_, err := ParseProfile(bad)
		if err == nil || err.Error() != `unknown Istio profile "`+bad+`": want one of "istio", "upstream-envoy"` {
			t.Errorf("ParseProfile(%q): %v", bad, err)
		}
	}
	var p Profile
	if err := p.Set("upstream-envoy"); err != nil || p != ProfileUpstreamEnvoy || p.String() != "upstream-envoy" {
		t.Errorf("Set: %q %v", p, err)
	}
	if err := p.Set("nope"); err == nil || p != ProfileUpstreamEnvoy {
		t.Errorf("Set(nope): %q %v", p, err)
	}
	o := &Options{Profile: "nope"}
	if _, err := o.IstiodValues(); err == nil || !strings.Contains(err.Error(), `unknown Istio profile "nope"`) {
		t.Errorf("IstiodValues with a bad profile: %v", err)
	}
}

func TestMergeValuesKeepsWhatIsThere(t *testing.T) {
	dst := map[string]any{"env": map[string]any{"A": "1"}, "telemetry": map[string]any{"v2": map[string]any{"enabled": true}}, "x": 1}
	got := mergeValues(dst, map[string]any{"env": map[string]any{"B": "2"}, "telemetry": map[string]any{"enabled": false}})
	b, _ := yaml.Marshal(got)
	if want := "env:\n  A: \"1\"\n  B: \"2\"\ntelemetry:\n  enabled: false\n  v2:\n    enabled: true\nx: 1\n"; string(b) != want {
		t.Errorf("merged:\n%s\nwant:\n%s", b, want)
	}
}

// renderIstiod renders the istio-discovery chart of the module with a profile and returns the
// istiod container's env (name -> value; valueFrom entries as "<from>") and the mesh config.
func renderIstiod(t *testing.T, p Profile) (map[string]string, map[string]any) {
	t.Helper()
	o := &Options{ChartsDir: chartsDir(t), Profile: p}
	o.defaults()
	values, err := o.IstiodValues()
	if err != nil {
		t.Fatal(err)
	}
	objs := render(t, o, istiodChart, ReleaseIstiod, Namespace, values)
	d := find(objs, "Deployment", "istiod")
	if d == nil {
		t.Fatal("no istiod Deployment")
	}
	env := map[string]string{}
	var containers []any
	if spec, ok := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any); ok {
		containers, _ = spec["containers"].([]any)
	}
	for _, c := range containers {
		cm := c.(map[string]any)
		if cm["name"] != "discovery" {
			continue
		}
		for _, e := range cm["env"].([]any) {
			em := e.(map[string]any)
			if v, ok := em["value"].(string); ok {
				env[em["name"].(string)] = v
			} else {
				env[em["name"].(string)] = "<from>"
			}
		}
	}
	if len(env) == 0 {
		t.Fatal("no env on istiod's discovery container")
	}
	cm := find(objs, "ConfigMap", "istio")
	if cm == nil {
		t.Fatal("no ConfigMap istio")
	}
	var mesh map[string]any
	if err := yaml.Unmarshal([]byte(cm["data"].(map[string]any)["mesh"].(string)), &mesh); err != nil {
		t.Fatal(err)
	}
	return env, mesh
}

// TestIstiodChartRendersTheProfile renders Istio's own istio-discovery chart (Helm Go SDK, client
// side): with ProfileUpstreamEnvoy istiod runs with metadata exchange and the ALPN filter off and
// the mesh config has no default metrics provider (the chart's telemetry.enabled=false), so istiod
// adds no stats filter; with ProfileIstio none of this is set and the chart's default prometheus
// provider is there.
func TestIstiodChartRendersTheProfile(t *testing.T) {
	env, mesh := renderIstiod(t, ProfileUpstreamEnvoy)
	for k, v := range UpstreamEnvoyEnv {
		if env[k] != v {
			t.Errorf("upstream-envoy: istiod env %s=%q, want %q", k, env[k], v)
		}
	}
	if env["PILOT_ENABLE_METADATA_EXCHANGE"] != "false" || env["PILOT_ENABLE_ALPN_FILTER"] != "false" {
		t.Errorf("upstream-envoy: env %v", env)
	}
	if dp, ok := mesh["defaultProviders"]; ok {
		t.Errorf("upstream-envoy: mesh defaultProviders %v, want none (telemetry off)", dp)
	}
	if mesh["accessLogFile"] != "/dev/stdout" {
		t.Errorf("upstream-envoy: egressconf's own mesh config lost: %v", mesh)
	}

	env, mesh = renderIstiod(t, ProfileIstio)
	for k := range UpstreamEnvoyEnv {
		if v, ok := env[k]; ok {
			t.Errorf("istio: istiod env has %s=%q", k, v)
		}
	}
	dp, _ := mesh["defaultProviders"].(map[string]any)
	if m, _ := dp["metrics"].([]any); len(m) != 1 || m[0] != "prometheus" {
		t.Errorf("istio: mesh defaultProviders %v, want metrics [prometheus] (Istio's default telemetry)", mesh["defaultProviders"])
	}
}

func TestUpstreamEnvoyExtensions(t *testing.T) {
	l, err := UpstreamEnvoyExtensions()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.Source, "/"+UpstreamEnvoyVersion+"/") || !strings.Contains(l.Source, "a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884") {
		t.Errorf("source %q", l.Source)
	}
	for _, typ := range []string{
		"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"envoy.extensions.filters.http.router.v3.Router",
		"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
	} {
		if !l.HasType(typ) {
			t.Errorf("upstream Envoy lacks %s", typ)
		}
	}
	for _, typ := range []string{
		"type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
		"type.googleapis.com/io.istio.http.peer_metadata.Config",
		"type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
		"type.googleapis.com/stats.PluginConfig",
		"type.googleapis.com/udpa.type.v1.TypedStruct",
	} {
		if l.HasType(typ) {
			t.Errorf("upstream Envoy registers %s", typ)
		}
	}
	if _, err := ParseExtensionList("# only a header\n"); err == nil {
		t.Error("an empty list parses")
	}
	if _, err := ParseExtensionList("lonely\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad line: %v", err)
	}
}
