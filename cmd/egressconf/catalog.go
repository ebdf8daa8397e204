package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

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

func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	paths, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
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

func cmdList(args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	var dirs stringList
	fs.Var(&dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	if _, err := parse(fs, args); err != nil {
		return usageError{err.Error()}
	}
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
	if *asJSON {
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

func cmdRender(args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	asmFile := fs.String("asm", "", "translate this ASMEgressTrafficPolicy file to native Istio resources")
	hermetic := fs.Bool("hermetic", false, "with --asm or GROUP: add the stand-in CA to TLS origination as a run does")
	var dirs stringList
	fs.Var(&dirs, "catalog", "scenario directory (repeatable; default: the built-in catalog)")
	pos, err := parse(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if *asmFile != "" {
		if len(pos) > 0 {
			return usageError{"render --asm FILE takes no GROUP"}
		}
		return renderASM(*asmFile, *hermetic)
	}
	if len(pos) != 1 {
		return usageError{"render needs one GROUP (or --asm FILE)"}
	}
	c, err := loadCatalog(dirs)
	if err != nil {
		return err
	}
	s, err := c.Group(pos[0])
	if err != nil {
		return err
	}
	transform := adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: *hermetic})
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

func renderASM(file string, hermetic bool) error {
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
	objs, err := adapt.TranslateASM(u, hermetic)
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
