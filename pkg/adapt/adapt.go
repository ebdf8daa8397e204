// Package adapt rewrites catalog objects for the mesh they are applied to: the ASMEgressTrafficPolicy
// translation where no controller serves that CRD, and the catalog's single hermetic adaptation, the
// stand-in CA for TLS origination.
package adapt

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/asm"
)

// OriginationCredential is the Secret (in the egress gateway's namespace) holding the run's stand-in
// CA as `cacert`, which TLS-originating DestinationRules reference so the gateway trusts the
// stand-in hosts' certificates.
const OriginationCredential = "egressconf-standin-ca"

// Func rewrites one object into the objects to apply in its place.
type Func func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)

// Options choose the adaptations.
type Options struct {
	// TranslateASM applies the ASMEgressTrafficPolicy translation (no controller serves the CRD).
	TranslateASM bool
	// HermeticTrust adds the stand-in CA to TLS origination (DestinationRule tls SIMPLE).
	HermeticTrust bool
}

// New returns the adaptation for the options.
func New(o Options) Func {
	return func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
		objs := []*unstructured.Unstructured{obj}
		if o.TranslateASM && IsASMPolicy(obj) {
			var err error
			if objs, err = TranslateASM(obj, o.HermeticTrust); err != nil {
				return nil, err
			}
		}
		if o.HermeticTrust {
			for i, x := range objs {
				objs[i] = OriginationTrust(x)
			}
		}
		return objs, nil
	}
}

// IsASMPolicy reports whether obj is an ASMEgressTrafficPolicy.
func IsASMPolicy(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "istio.alibabacloud.com" && gvk.Kind == "ASMEgressTrafficPolicy"
}

// TranslateASM translates one policy for the egress gateway it names (a known fixture gateway).
func TranslateASM(obj *unstructured.Unstructured, hermetic bool) ([]*unstructured.Unstructured, error) {
	return TranslateASMFor(obj, hermetic, nil)
}

// TranslateASMFor translates one policy for the egress gateway it names, one of gateways (by name);
// nil gateways are the fixture gateways. A name not among them is an *UnknownGatewayError.
func TranslateASMFor(obj *unstructured.Unstructured, hermetic bool, gateways map[string]asm.Gateway) ([]*unstructured.Unstructured, error) {
	if gateways == nil {
		gateways = FixtureGateways()
	}
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	p, err := asm.Parse(data)
	if err != nil {
		return nil, err
	}
	if errs := asm.Validate(p); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	name := p.Spec.ByEgressGateway.Name
	g, ok := gateways[name]
	if !ok {
		known := make([]string, 0, len(gateways))
		for n := range gateways {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, &UnknownGatewayError{Name: name, Known: known}
	}
	opts := asm.TranslateOptions{}
	if hermetic {
		opts.OriginationCredentialName = OriginationCredential
	}
	return asm.TranslateWithOptions(p, g, opts)
}

// UnknownGatewayError is a policy naming an egress gateway the translation does not know.
type UnknownGatewayError struct {
	Name  string
	Known []string
}

func (e *UnknownGatewayError) Error() string {
	return fmt.Sprintf("spec.byEgressGateway.name: unknown egress gateway %q; known: %v", e.Name, e.Known)
}

// FixtureGateways are the harness's own egress gateways (fixtures.Gateways) as the translator
// describes them, by name; a new map each call.
func FixtureGateways() map[string]asm.Gateway {
	out := make(map[string]asm.Gateway, len(fixtures.Gateways))
	for n, g := range fixtures.Gateways {
		out[n] = ASMGateway(g)
	}
	return out
}

// ASMGateway converts a fixture gateway to the translator's description.
func ASMGateway(g fixtures.Gateway) asm.Gateway {
	out := asm.Gateway{Name: g.Name, Namespace: g.Namespace, Labels: g.Labels}
	for _, p := range g.Ports {
		out.Ports = append(out.Ports, asm.GatewayPort{Number: p.Number, Name: p.Name, Protocol: p.Protocol, TargetPort: p.TargetPort})
	}
	return out
}

// OriginationTrust returns obj with credentialName set on every DestinationRule TLS setting of mode
// SIMPLE that names no CA of its own, so the originating proxy verifies the stand-in hosts with the
// run's CA. Anything else is returned unchanged.
func OriginationTrust(obj *unstructured.Unstructured) *unstructured.Unstructured {
	if obj.GetKind() != "DestinationRule" {
		return obj
	}
	out := obj.DeepCopy()
	spec, _ := out.Object["spec"].(map[string]any)
	var fix func(tp map[string]any)
	fix = func(tp map[string]any) {
		if tp == nil {
			return
		}
		if t, ok := tp["tls"].(map[string]any); ok && t["mode"] == "SIMPLE" && t["credentialName"] == nil && t["caCertificates"] == nil {
			t["credentialName"] = OriginationCredential
		}
		if pls, ok := tp["portLevelSettings"].([]any); ok {
			for _, pl := range pls {
				if m, ok := pl.(map[string]any); ok {
					fix(m)
				}
			}
		}
	}
	if spec != nil {
		if tp, ok := spec["trafficPolicy"].(map[string]any); ok {
			fix(tp)
		}
		if subsets, ok := spec["subsets"].([]any); ok {
			for _, s := range subsets {
				if m, ok := s.(map[string]any); ok {
					if tp, ok := m["trafficPolicy"].(map[string]any); ok {
						fix(tp)
					}
				}
			}
		}
	}
	return out
}
