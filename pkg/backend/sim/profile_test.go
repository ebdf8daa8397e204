package sim_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pilot/pkg/features"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/envoymodel"
	"github.com/egressconf/egressconf/pkg/istioinstall"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

// typeUse is one google.protobuf.Any in a proxy's xDS.
type typeUse struct {
	// where: group, step, proxy, resource and field path.
	where string
	// typeURL is the type Envoy looks the extension up by: the Any's, or for a TypedStruct
	// (udpa.type.v1 / xds.type.v3) the type_url inside it.
	typeURL string
	// wrapper is the TypedStruct's own type URL, if any.
	wrapper string
	// opaque: the type is not linked into this binary, so what it holds was not walked.
	opaque bool
}

// walkAnys visits every google.protobuf.Any in m, recursively: inside each Any it resolves (the
// xDS and Istio types linked in), and the type_url of each TypedStruct.
func walkAnys(m protoreflect.Message, path string, visit func(typeUse)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		walkAny(a, path, visit)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkAnys(l.Get(i).Message(), fmt.Sprintf("%s[%d]", name, i), visit)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), fmt.Sprintf("%s[%q]", name, k.String()), visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkAnys(v.Message(), name, visit)
		}
		return true
	})
}

func walkAny(a *anypb.Any, path string, visit func(typeUse)) {
	u := typeUse{where: path, typeURL: a.GetTypeUrl()}
	if strings.HasSuffix(u.typeURL, "/udpa.type.v1.TypedStruct") || strings.HasSuffix(u.typeURL, "/xds.type.v3.TypedStruct") {
		// TypedStruct{type_url = 1; value = 2 (a Struct: no Any inside)}, read off the wire so
		// that the check does not depend on the wrapper's Go type being linked in.
		u.wrapper, u.typeURL = u.typeURL, typedStructURL(a.GetValue())
		visit(u)
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		u.opaque = true
		visit(u)
		return
	}
	visit(u)
	walkAnys(inner.ProtoReflect(), path+"<"+bareType(u.typeURL)+">", visit)
}

func typedStructURL(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "<malformed TypedStruct>"
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			s, n := protowire.ConsumeString(b)
			if n < 0 {
				return "<malformed TypedStruct>"
			}
			return s
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "<malformed TypedStruct>"
		}
		b = b[n:]
	}
	return "<TypedStruct without type_url>"
}

func bareType(u string) string { return u[strings.LastIndex(u, "/")+1:] }

func (u typeUse) String() string {
	if u.wrapper != "" {
		return u.where + " (in a " + bareType(u.wrapper) + ")"
	}
	return u.where
}

// walkXDS visits every Any of a proxy's listeners, clusters and routes. (istiod serves SDS secrets
// only for credentialName, which no scenario uses: the sidecars' and gateways' certificates, SDS
// "default" and "ROOTCA", come from the agent, not from istiod; a secret would be walked the same.)
func walkXDS(where string, x *envoymodel.XDS, visit func(typeUse)) {
	res := func(kind, name string, m proto.Message) {
		walkAnys(m.ProtoReflect(), fmt.Sprintf("%s %s %q: ", where, kind, name), visit)
	}
	for _, l := range x.Listeners {
		res("listener", l.GetName(), l)
	}
	for _, c := range x.Clusters {
		res("cluster", c.GetName(), c)
	}
	for _, r := range x.Routes {
		res("route", r.GetName(), r)
	}
}

// catalogTypes runs the catalog's groups (all when none is named) on the offline backend with a
// profile and walks the xDS of every proxy (sidecars and egress gateways) in every step's
// converged state. It returns every Any found, by type URL, and the results of the run.
func catalogTypes(t *testing.T, p istioinstall.Profile, groups ...string) (map[string][]typeUse, map[string]report.Result) {
	t.Helper()
	c := builtin(t)
	scenarios := c.Scenarios
	if len(groups) > 0 {
		scenarios = nil
		for _, g := range groups {
			scenarios = append(scenarios, group(t, c, g))
		}
	}
	b := sim.New(sim.WithProfile(p))
	if b.Profile() != p {
		t.Fatalf("backend profile %q, want %q", b.Profile(), p)
	}
	r := runner.New(runner.Options{Backend: b, Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true})})
	uses := map[string][]typeUse{}
	ctx := context.Background()
	steps := 0
	for _, s := range scenarios {
		r.Begin(ctx, s)
		for i := range s.Spec.Steps {
			st := &s.Spec.Steps[i]
			r.Step(ctx, i, st)
			xs, err := b.XDS()
			if err != nil {
				t.Fatalf("%s step %d %q: %v", s.Metadata.Group, i+1, st.Name, err)
			}
			if len(xs) == 0 {
				t.Fatalf("%s step %d %q: no proxies", s.Metadata.Group, i+1, st.Name)
			}
			refs := make([]string, 0, len(xs))
			for ref := range xs {
				refs = append(refs, ref)
			}
			sort.Strings(refs)
			for _, ref := range refs {
				walkXDS(fmt.Sprintf("%s step %d %q proxy %s", s.Metadata.Group, i+1, st.Name, ref), xs[ref], func(u typeUse) {
					uses[u.typeURL] = append(uses[u.typeURL], u)
				})
			}
			steps++
			for j := range st.Expect {
				r.Check(ctx, st, &st.Expect[j])
			}
		}
		if err := r.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if steps < len(scenarios) {
		t.Fatalf("walked %d steps of %d groups", steps, len(scenarios))
	}
	results := map[string]report.Result{}
	for _, res := range r.Results() {
		results[res.ID] = res
	}
	t.Logf("profile %s: %d groups, %d steps, %d distinct types", p, len(scenarios), steps, len(uses))
	return uses, results
}

func sortedTypes(uses map[string][]typeUse) []string {
	out := make([]string, 0, len(uses))
	for u := range uses {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// TestUpstreamEnvoyProfileGeneratesOnlyUpstreamExtensions: with ProfileUpstreamEnvoy, every type
// Istio's control plane puts in the xDS of every proxy, in every step of every group, is the
// configuration type of an extension upstream Envoy 1.40.0 registers (the binary's own list,
// istioinstall.UpstreamEnvoyExtensions); and the catalog still agrees with the documents. As a
// check that the walk can fail, with ProfileIstio the same walk (on G1) finds Istio's own
// extensions: metadata exchange, peer metadata, ALPN, stats.
func TestUpstreamEnvoyProfileGeneratesOnlyUpstreamExtensions(t *testing.T) {
	known, err := istioinstall.UpstreamEnvoyExtensions()
	if err != nil {
		t.Fatal(err)
	}
	uses, results := catalogTypes(t, istioinstall.ProfileUpstreamEnvoy)
	for _, typ := range sortedTypes(uses) {
		us := uses[typ]
		if !known.HasType(typ) {
			var where []string
			for i, u := range us {
				if i == 3 {
					where = append(where, fmt.Sprintf("and %d more", len(us)-3))
					break
				}
				where = append(where, u.String())
			}
			t.Errorf("type %s is not registered in upstream Envoy %s (%d uses): %s", typ, istioinstall.UpstreamEnvoyVersion, len(us), strings.Join(where, "; "))
			continue
		}
		if us[0].opaque {
			t.Errorf("type %s (%s) is not linked into the test: its contents were not walked", typ, us[0].where)
		}
	}
	t.Logf("upstream-envoy: %d distinct types, all registered in upstream Envoy %s:\n%s", len(uses), istioinstall.UpstreamEnvoyVersion, strings.Join(sortedTypes(uses), "\n"))
	for id, res := range results {
		want := report.Pass
		if id == "DENYNS-05" || id == "DENYNS-06" { // NetworkPolicy: not enforced offline
			want = report.Skip
		}
		if res.Verdict != want {
			t.Errorf("upstream-envoy: %s: %s, want %s: %s", id, res.Verdict, want, res.Message)
		}
	}
	if len(results) != 62 {
		t.Errorf("upstream-envoy: %d results, want 62", len(results))
	}

	// The converse on the first group (every Istio extension shows up there already).
	istio, _ := catalogTypes(t, istioinstall.ProfileIstio, "G1")
	var istioOnly []string
	for _, typ := range sortedTypes(istio) {
		if !known.HasType(typ) {
			istioOnly = append(istioOnly, fmt.Sprintf("%s (%d uses, e.g. %s)", typ, len(istio[typ]), istio[typ][0]))
		}
	}
	t.Logf("istio: types upstream Envoy does not register:\n%s", strings.Join(istioOnly, "\n"))
	for _, typ := range []string{
		"type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",        // istio.metadata_exchange (in a TypedStruct)
		"type.googleapis.com/io.istio.http.peer_metadata.Config",                        // HTTP peer metadata
		"type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig", // istio.alpn
		"type.googleapis.com/stats.PluginConfig",                                        // istio.stats
	} {
		if len(istio[typ]) == 0 {
			t.Errorf("istio: the walk found no %s: the check would not see Istio's extensions", typ)
		} else if known.HasType(typ) {
			t.Errorf("istio: %s is in upstream Envoy's list", typ)
		}
	}
}

// TestProfileSettingsAreScoped: Istio's process-global feature variables hold the profile's values
// only while the backend uses the control plane; afterwards they are what they were. An unknown
// profile fails the step with ParseProfile's error.
func TestProfileSettingsAreScoped(t *testing.T) {
	mx, alpn := features.MetadataExchange, features.ALPNFilter
	uses, _ := catalogTypes(t, istioinstall.ProfileUpstreamEnvoy, "G1")
	if len(uses) == 0 {
		t.Fatal("no types")
	}
	if features.MetadataExchange != mx || features.ALPNFilter != alpn {
		t.Errorf("after an upstream-envoy run: MetadataExchange %v ALPNFilter %v, were %v %v", features.MetadataExchange, features.ALPNFilter, mx, alpn)
	}
	c := builtin(t)
	b := sim.New(sim.WithProfile("envoy"))
	if err := b.Setup(context.Background(), group(t, c, "G1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Converge(context.Background()); err == nil || !strings.Contains(err.Error(), `unknown Istio profile "envoy"`) {
		t.Errorf("converge with an unknown profile: %v", err)
	}
	if got := sim.New().Profile(); got != istioinstall.ProfileIstio {
		t.Errorf("default profile %q", got)
	}
}
