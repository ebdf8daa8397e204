// Package adapt rewrites catalog objects for the mesh they are applied to: the ASMEgressTrafficPolicy
// translation where no controller serves that CRD, and the catalog's single hermetic adaptation, the
// stand-in CA for TLS origination.
package adapt

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/asm"
)

// OriginationCA is the ConfigMap holding the run's stand-in CA (key ca.crt) that TLS-originating
// DestinationRules reference so the originating proxy, sidecar or gateway, trusts the stand-in
// hosts' certificates; there is one in the namespace of each rule that references it
// (standin.CACredentialName; the live backend creates it).
const OriginationCA = "egressconf-standin-ca"

// OriginationCredentialName is the credentialName the hermetic adaptation writes into a
// DestinationRule of namespace ns. Istio requires a configmap:// reference to name the rule's own
// namespace.
func OriginationCredentialName(ns string) string {
	return "configmap://" + ns + "/" + OriginationCA
}

// Func rewrites one object into the objects to apply in its place.
type Func func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)

// Options choose the adaptations.
type Options struct {
	// TranslateASM applies the ASMEgressTrafficPolicy translation (no controller serves the CRD).
	TranslateASM bool
	// HermeticTrust adds the stand-in CA to TLS origination (DestinationRule tls SIMPLE;
	// OriginationTrust).
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
				var err error
				if objs[i], err = OriginationTrust(x); err != nil {
					return nil, err
				}
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

// TranslateASM translates one policy for the egress gateway it names (a known fixture gateway);
// hermetic adds the stand-in CA to the translation's TLS origination (OriginationTrust).
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
	objs, err := asm.TranslateWithOptions(p, g, asm.TranslateOptions{})
	if err != nil || !hermetic {
		return objs, err
	}
	for i, o := range objs {
		if objs[i], err = OriginationTrust(o); err != nil {
			return nil, err
		}
	}
	return objs, nil
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

// OriginationTrust returns obj with the run's CA named on every DestinationRule TLS setting (in
// trafficPolicy, its portLevelSettings, and each subset's) of mode SIMPLE that names no CA of its
// own (no credentialName, no caCertificates) and verifies the server (insecureSkipVerify not true):
// credentialName: configmap://<the rule's namespace>/egressconf-standin-ca. Anything else is
// returned unchanged.
//
// A ConfigMap reference, unlike a Secret name, is honoured by istiod for every proxy the rule
// applies to: for a Secret name without a workloadSelector, istiod gives a sidecar no TLS at all
// (pilot/pkg/networking/core/cluster_tls.go, buildUpstreamClusterTLSContext), so the sidecar would
// send plain text where the document originates TLS. With the ConfigMap the cluster Istio
// generates differs from the unadapted one only in where the validation context's trusted CA comes
// from (docs/standin.md). A setting with caCrl is refused: with credentialName Istio takes no caCrl.
func OriginationTrust(obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if obj.GetKind() != "DestinationRule" || !strings.HasPrefix(obj.GetAPIVersion(), "networking.istio.io/") {
		return obj, nil
	}
	spec, _ := obj.Object["spec"].(map[string]any)
	if spec == nil {
		return obj, nil
	}
	ns := obj.GetNamespace()
	out := obj.DeepCopy()
	spec = out.Object["spec"].(map[string]any)
	changed := false
	var errs []string
	fix := func(path string, tp map[string]any) {
		t, ok := tp["tls"].(map[string]any)
		if !ok || t["mode"] != "SIMPLE" || t["credentialName"] != nil || t["caCertificates"] != nil || t["insecureSkipVerify"] == true {
			return
		}
		if t["caCrl"] != nil {
			errs = append(errs, path+".tls.caCrl: set without caCertificates; the stand-in CA cannot be added (Istio takes no caCrl with credentialName)")
			return
		}
		if ns == "" {
			errs = append(errs, "metadata.namespace: empty; the stand-in CA reference names the rule's namespace")
			return
		}
		t["credentialName"] = OriginationCredentialName(ns)
		changed = true
	}
	policy := func(path string, tp map[string]any) {
		if tp == nil {
			return
		}
		fix(path, tp)
		pls, _ := tp["portLevelSettings"].([]any)
		for i, pl := range pls {
			if m, ok := pl.(map[string]any); ok {
				fix(fmt.Sprintf("%s.portLevelSettings[%d]", path, i), m)
			}
		}
	}
	tp, _ := spec["trafficPolicy"].(map[string]any)
	policy("spec.trafficPolicy", tp)
	subsets, _ := spec["subsets"].([]any)
	for i, s := range subsets {
		if m, ok := s.(map[string]any); ok {
			tp, _ := m["trafficPolicy"].(map[string]any)
			policy(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), tp)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("DestinationRule %s/%s: %s", ns, obj.GetName(), strings.Join(errs, "; "))
	}
	if !changed {
		return obj, nil
	}
	return out, nil
}
