package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKubeconfig writes a kubeconfig with contexts "a" and "b" pointing at server.
func writeKubeconfig(t *testing.T, server, current string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `"}}]
contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: c, user: u}}]
current-context: "` + current + `"
users: [{name: u, user: {token: x}}]
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExistingPreflight: --backend existing says, before anything else, which kubeconfig,
// context or API server is the problem and what to run instead; a live API server passes.
func TestExistingPreflight(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"major":"1","minor":"34","gitVersion":"v1.34.4"}`))
	}))
	defer api.Close()
	// An address nothing listens on: a port taken and released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	if cfg, err := existingConfig(context.Background(), writeKubeconfig(t, api.URL, "a"), ""); err != nil || cfg.Host != api.URL {
		t.Fatalf("a live API server: %v (host %v)", err, cfg)
	}
	if _, err := existingConfig(context.Background(), writeKubeconfig(t, api.URL, "a"), "b"); err != nil {
		t.Fatalf("--context b: %v", err)
	}
	for _, tc := range []struct {
		name, kubeconfig, context string
		want                      []string
	}{
		{"missing file", filepath.Join(t.TempDir(), "none"), "", []string{"--kubeconfig", "cannot be read", "make sim"}},
		{"unknown context", writeKubeconfig(t, api.URL, "a"), "nope", []string{`context "nope" is not in --kubeconfig`, "its contexts: a, b", "make sim"}},
		{"no current context", writeKubeconfig(t, api.URL, ""), "", []string{"has no current context", "its contexts: a, b"}},
		{"API server down", writeKubeconfig(t, dead, "a"), "", []string{`the API server of context "a" (` + dead + `) does not answer`, "refused", "make sim"}},
	} {
		_, err := existingConfig(context.Background(), tc.kubeconfig, tc.context)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tc.name, w, err)
			}
		}
	}
}
