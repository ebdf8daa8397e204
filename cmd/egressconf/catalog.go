package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/asm"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/istiovalidate"
	"github.com/egressconf/egressconf/suites"
)

// loadCatalog loads the built-in catalog, or the given scenario directories.
func loadCatalog(dirs []string) (*catalog.Catalog, error) {
	if len(dirs) == 0 {
		return suites.Builtin()
	}
	return catalog.LoadPaths(dirs...)
}

// validateOptions check every object with Istio's own validation, ASM policies through their
// translation as well.
func validateOptions() catalog.ValidateOptions {
	return catalog.ValidateOptions{
		Objects:  istiovalidate.Object,
		Gateways: fixtures.GatewayNames(),
		ExpandObject: func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
			if !adapt.IsASMPolicy(obj) {
				return []*unstructured.Unstructured{obj}, nil
			}
			return adapt.TranslateASM(obj, true)
		},
	}
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "check the built-in catalog, or scenario directories/files",
		Args:  cobra.ArbitraryArgs,
		RunE:  func(_ *cobra.Command, paths []string) error { return validate(paths) },
	}
}

func validate(paths []string) error {
	c, err := loadCatalog(paths)
	if err != nil {
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid:\n%w", err)
	}
	fmt.Printf("catalog valid: %d scenarios, %d expectations\n", len(c.Scenarios), len(c.IDs()))
	return nil
}

type listedExpectation struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Drift    string   `json:"drift,omitempty"`
	Requires string   `json:"requires,omitempty"`
	Checks   []string `json:"checks"`
}

type listedStep struct {
	Name   string              `json:"name"`
	Expect []listedExpectation `json:"expect,omitempty"`
}

type listedGroup struct {
	Group   string       `json:"group"`
	Name    string       `json:"name"`
	Title   string       `json:"title"`
	Profile string       `json:"profile"`
	Steps   []listedStep `json:"steps"`
}

func newListCmd() *cobra.Command {
	var asJSON bool
	var dirs stringList
	c := &cobra.Command{
		Use:   "list [--json] [--catalog DIR]...",
		Short: "groups, steps and expectation IDs",
		Args:  cobra.ArbitraryArgs,
		RunE:  func(*cobra.Command, []string) error { return list(dirs, asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().Var(&dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	return c
}

func list(dirs []string, asJSON bool) error {
	c, err := loadCatalog(dirs)
	if err != nil {
		return err
	}
	if err := catalog.Validate(c, validateOptions()); err != nil {
		return fmt.Errorf("catalog is invalid:\n%w", err)
	}
	var groups []listedGroup
	for _, s := range c.Scenarios {
		g := listedGroup{Group: s.Metadata.Group, Name: s.Metadata.Name, Title: s.Spec.Title, Profile: s.Spec.Profile}
		for _, st := range s.Spec.Steps {
			ls := listedStep{Name: st.Name}
			for _, e := range st.Expect {
				le := listedExpectation{ID: e.ID, Kind: e.Kind, Drift: e.Drift, Requires: e.Requires}
				for _, ch := range e.Checks {
					le.Checks = append(le.Checks, ch.Description())
				}
				ls.Expect = append(ls.Expect, le)
			}
			g.Steps = append(g.Steps, ls)
		}
		groups = append(groups, g)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"groups": groups, "ids": c.IDs()})
	}
	for _, g := range groups {
		fmt.Printf("%s %s (%s): %s\n", g.Group, g.Name, g.Profile, g.Title)
		for i, st := range g.Steps {
			fmt.Printf("  step %d %s\n", i+1, st.Name)
			for _, e := range st.Expect {
				fmt.Printf("    %-12s %-10s %s\n", e.ID, e.Kind, strings.Join(e.Checks, " | "))
			}
		}
	}
	fmt.Printf("%d groups, %d expectations\n", len(groups), len(c.IDs()))
	return nil
}

func newRenderCmd() *cobra.Command {
	var asmFile string
	var hermetic bool
	var dirs stringList
	var gateways []string
	var kubeconfig, kubeContext string
	c := &cobra.Command{
		Use:   "render (GROUP | --asm FILE [--gateway SPEC]...)",
		Short: "every manifest a group applies, in order, as YAML; or an ASMEgressTrafficPolicy as native Istio resources",
		Long: `Render prints every manifest a catalog group applies, in order, as YAML (render GROUP), or
the native Istio resources an ASMEgressTrafficPolicy translates to (render --asm FILE).

The policy's spec.byEgressGateway.name must name a known egress gateway: the harness's own
(` + strings.Join(fixtures.GatewayNames(), ", ") + `) or one given with --gateway, which describes
your gateway's Service and pods:

  --gateway name=NAME,namespace=NS,selector=KEY=VALUE[;KEY=VALUE...],ports=[PORTNAME:]NUMBER[;...]

  name       the gateway's name (its Service's name), as the policy's byEgressGateway.name says
  namespace  the namespace of the gateway's Service and pods
  selector   the labels of the gateway's pods (the generated Gateway's selector)
  ports      the ports of the gateway's Service; every port the policy routes through must be one

--gateway is repeatable (one gateway per flag, its value is not split at commas); a --gateway named
like one of the harness's gateways replaces it.

With --kubeconfig or --context, a gateway not given with --gateway is read from that cluster
instead: the Service named like it (in any namespace; exactly one), its selector and its ports.`,
		Example: `  egressconf render G3
  egressconf render --asm policy.yaml
  egressconf render --asm policy.yaml --gateway 'name=corp-egress,namespace=egress,selector=istio=corp-egress,ports=http:80;https:443'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, pos []string) error {
			if asmFile != "" {
				if len(pos) > 0 {
					return usageError{"render --asm FILE takes no GROUP"}
				}
				gws, err := parseGatewayFlags(gateways)
				if err != nil {
					return err
				}
				var lookup func(context.Context, string) (asm.Gateway, error)
				if kubeconfig != "" || kubeContext != "" {
					lookup = clusterGatewayLookup(kubeconfig, kubeContext)
				}
				return renderASM(context.Background(), asmFile, hermetic, gws, lookup)
			}
			if len(gateways) > 0 || kubeconfig != "" || kubeContext != "" {
				return usageError{"--gateway, --kubeconfig and --context are for render --asm FILE (the catalog's groups use the harness's gateways)"}
			}
			if len(pos) != 1 {
				return usageError{"render needs one GROUP (or --asm FILE)"}
			}
			return renderGroup(pos[0], dirs, hermetic)
		},
	}
	c.Flags().StringVar(&asmFile, "asm", "", "translate this ASMEgressTrafficPolicy file to native Istio resources")
	c.Flags().BoolVar(&hermetic, "hermetic", false, "with --asm or GROUP: add the stand-in CA to TLS origination as a run does")
	c.Flags().Var(&dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	// StringArray, not a comma list: a gateway's description has commas of its own.
	c.Flags().StringArrayVar(&gateways, "gateway", nil, "with --asm: an egress gateway of yours, `SPEC` name=NAME,namespace=NS,selector=K=V[;K=V],ports=[NAME:]NUMBER[;...] (repeatable; see above)")
	c.Flags().StringVar(&kubeconfig, "kubeconfig", "", "with --asm: read the policy's egress gateway from this cluster (its Service) unless --gateway gives it")
	c.Flags().StringVar(&kubeContext, "context", "", "with --asm: the kubeconfig context of that cluster (default the current one)")
	return c
}

func renderGroup(group string, dirs []string, hermetic bool) error {
	c, err := loadCatalog(dirs)
	if err != nil {
		return err
	}
	s, err := c.Group(group)
	if err != nil {
		return err
	}
	transform := adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: hermetic})
	fmt.Printf("# %s %s: %s\n# start: mesh outboundTrafficPolicy %s\n", s.Metadata.Group, s.Metadata.Name, s.Spec.Title, s.Spec.MeshPolicy)
	for i, st := range s.Spec.Steps {
		fmt.Printf("# step %d: %s\n", i+1, st.Name)
		if st.MeshPolicy != "" {
			fmt.Printf("# set mesh outboundTrafficPolicy %s\n", st.MeshPolicy)
		}
		for _, r := range st.Delete {
			fmt.Printf("# delete %s\n", r.Key())
		}
		for _, ref := range st.Remove {
			fmt.Printf("# remove workload %s\n", ref)
		}
		for _, ref := range st.Deploy {
			fmt.Printf("# deploy workload %s\n", ref)
		}
		for _, r := range st.Apply {
			objs, err := s.Objects(r)
			if err != nil {
				return err
			}
			for _, o := range objs {
				out, err := transform(o)
				if err != nil {
					return fmt.Errorf("%s: %s %s: %w", r.File, o.GetKind(), o.GetName(), err)
				}
				if len(out) != 1 || out[0] != o {
					fmt.Printf("# %s %s/%s from %s, translated to %d native resources\n", o.GetKind(), o.GetNamespace(), o.GetName(), r.Key(), len(out))
				}
				for _, x := range out {
					if err := printYAML("apply "+r.Key(), x); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// renderASM prints the translation of a policy file for its egress gateway: one of userGateways
// (--gateway), else, with a cluster lookup, the cluster's, else a fixture gateway.
func renderASM(ctx context.Context, file string, hermetic bool, userGateways map[string]asm.Gateway, cluster func(context.Context, string) (asm.Gateway, error)) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	p, err := asm.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if errs := asm.Validate(p); len(errs) > 0 {
		return fmt.Errorf("%s: %w", file, errs.ToAggregate())
	}
	u, err := asm.ToUnstructured(p)
	if err != nil {
		return err
	}
	gateways := adapt.FixtureGateways()
	if name := p.Spec.ByEgressGateway.Name; cluster != nil {
		if _, given := userGateways[name]; given {
			cluster = nil
		}
	}
	if name := p.Spec.ByEgressGateway.Name; cluster != nil {
		g, err := cluster(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		gateways[name] = g
	}
	for n, g := range userGateways {
		gateways[n] = g
	}
	objs, err := adapt.TranslateASMFor(u, hermetic, gateways)
	var unknown *adapt.UnknownGatewayError
	if errors.As(err, &unknown) {
		return fmt.Errorf("%s: %w; to translate for a gateway of yours, describe it with --gateway name=%s,namespace=NS,selector=KEY=VALUE,ports=NUMBER[;NUMBER] (egressconf render --help)", file, err, unknown.Name)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, o := range objs {
		if err := printYAML("", o); err != nil {
			return err
		}
	}
	return nil
}

func printYAML(comment string, o *unstructured.Unstructured) error {
	y, err := yaml.Marshal(o.Object)
	if err != nil {
		return err
	}
	fmt.Println("---")
	if comment != "" {
		fmt.Printf("# %s\n", comment)
	}
	fmt.Print(string(y))
	return nil
}
