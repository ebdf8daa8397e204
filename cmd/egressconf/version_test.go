package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

// The version names the modules that decide behaviour as the build holds them (test binaries carry
// the module's dependencies in their build info too).
func TestVersionNamesTheModulesBuiltIn(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build info in this binary")
	}
	want := map[string]string{}
	for _, d := range bi.Deps {
		want[d.Path] = d.Version
	}
	v := readVersion()
	for path, got := range map[string]string{"istio.io/istio": v.Istio, "sigs.k8s.io/kind": v.Kind, "k8s.io/client-go": v.ClientGo, "helm.sh/helm/v3": v.Helm, "istio.io/api": v.IstioAPI} {
		if want[path] == "" || got != want[path] {
			t.Errorf("%s: version says %q, build info %q", path, got, want[path])
		}
	}
	if v.Go != bi.GoVersion {
		t.Errorf("go: %q, want %q", v.Go, bi.GoVersion)
	}
	var text, js bytes.Buffer
	if err := printVersion(&text, v, false); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"egressconf ", "istio.io/istio", v.Istio, "sigs.k8s.io/kind", v.Kind, "envoy"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, text.String())
		}
	}
	if err := printVersion(&js, v, true); err != nil {
		t.Fatal(err)
	}
	var back versionInfo
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back != v {
		t.Errorf("JSON does not round-trip: %v\n%s", err, js.String())
	}
	if err := cmdVersion([]string{"extra"}); err == nil {
		t.Error("version with an argument accepted")
	}
}

// Every exit code a command can end with is documented in the help, with its verdicts.
func TestUsageDocumentsExitCodes(t *testing.T) {
	for _, w := range []string{"Exit codes:", "  0 ", "PASSED", "PARTIAL", "INCONCLUSIVE", "  1 ", "FAILED", "  2 ", "  130 ", "INTERRUPTED"} {
		if !strings.Contains(exitCodes, w) {
			t.Errorf("exit codes lack %q", w)
		}
	}
}
