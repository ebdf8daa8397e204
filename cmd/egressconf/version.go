package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, when set at link time (make release: -ldflags "-X main.version=..."), is egressconf's
// version; otherwise it is the module version Go records (go install ...@v1.2.3), or "(devel)".
var version string

// versionInfo is what `egressconf version` prints: the build and the modules that decide behaviour.
type versionInfo struct {
	Egressconf string `json:"egressconf"`
	Revision   string `json:"revision,omitempty"`
	Go         string `json:"go"`
	// Istio is the istio.io/istio module the offline oracle, the validation and the Helm charts'
	// defaults come from.
	Istio     string `json:"istio"`
	IstioAPI  string `json:"istioAPI"`
	Kind      string `json:"kind"`
	ClientGo  string `json:"clientGo"`
	Helm      string `json:"helm"`
	EnvoyNote string `json:"envoy"`
}

func readVersion() versionInfo {
	v := versionInfo{Egressconf: "(unknown)", Istio: "(not in build)", IstioAPI: "(not in build)",
		Kind: "(not in build)", ClientGo: "(not in build)", Helm: "(not in build)",
		// The harness carries no Envoy: it measures the cluster's proxies, and each live run records
		// their Envoy version (results.json, summary.md).
		EnvoyNote: "none bundled: a live run records its proxies' Envoy version in its reports"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	v.Egressconf = bi.Main.Version
	if version != "" {
		v.Egressconf = version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.Revision = s.Value
		}
	}
	for _, d := range bi.Deps {
		mv := d.Version
		if d.Replace != nil {
			mv = d.Replace.Version + " (replaced)"
		}
		switch d.Path {
		case "istio.io/istio":
			v.Istio = mv
		case "istio.io/api":
			v.IstioAPI = mv
		case "sigs.k8s.io/kind":
			v.Kind = mv
		case "k8s.io/client-go":
			v.ClientGo = mv
		case "helm.sh/helm/v3":
			v.Helm = mv
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version [--json]",
		Short: "egressconf and the Istio, kind, client-go, Helm modules in it",
		Args: func(_ *cobra.Command, pos []string) error {
			if len(pos) > 0 {
				return usageError{fmt.Sprintf("version takes no arguments, got %q", pos[0])}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return printVersion(c.OutOrStdout(), readVersion(), asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return c
}

func printVersion(w io.Writer, v versionInfo, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	rev := ""
	if v.Revision != "" {
		rev = " (" + v.Revision + ")"
	}
	if _, err := fmt.Fprintf(w, "egressconf %s%s\n", v.Egressconf, rev); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"go", v.Go}, {"istio.io/istio", v.Istio}, {"istio.io/api", v.IstioAPI},
		{"sigs.k8s.io/kind", v.Kind}, {"k8s.io/client-go", v.ClientGo}, {"helm", v.Helm}, {"envoy", v.EnvoyNote}} {
		if _, err := fmt.Fprintf(w, "  %-17s %s\n", kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}
