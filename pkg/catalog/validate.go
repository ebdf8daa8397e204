package catalog

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/egressconf/egressconf/pkg/standin"
)

// Profiles are the conformance profiles a scenario may belong to.
var Profiles = []string{"istio-native", "asm-egress-traffic-policy", "feature-corpus"}

// MeshPolicies are the outbound traffic policy modes.
var MeshPolicies = []string{"ALLOW_ANY", "REGISTRY_ONLY"}

// Capabilities a step or expectation may require.
var Capabilities = []string{"networkpolicy"}

// ObjectValidator checks one resource object (e.g. with Istio's own validation). It returns nil for
// kinds it does not know.
type ObjectValidator func(obj *unstructured.Unstructured) error

// ValidateOptions configure Validate.
type ValidateOptions struct {
	// Objects validates every object of every resource file; nil skips that check.
	Objects ObjectValidator
	// Gateways are the gateway names a scenario may require.
	Gateways []string
	// ExpandObject turns an object the mesh does not serve natively (ASMEgressTrafficPolicy) into the
	// objects it stands for, so those are validated too; nil leaves objects as they are.
	ExpandObject func(obj *unstructured.Unstructured) ([]*unstructured.Unstructured, error)
}

// Fixtures are the workload templates of fixtures/.
var Fixtures = []string{"sleep", "nginx", "httpbin"}

func fixtureChoice() string {
	return strings.Join(Fixtures[:len(Fixtures)-1], ", ") + " or " + Fixtures[len(Fixtures)-1]
}

// ReservedLabels are the labels egressconf sets itself on namespaces and pods: the app label
// (Service selectors, pod lookup), the ownership labels (cleanup, leak check) and Istio's
// injection labels (the injection and sidecar fields). A scenario's labels may not set them.
var ReservedLabels = []string{"app", "app.kubernetes.io/managed-by", "egressconf.io/run", "istio-injection", "sidecar.istio.io/inject", "security.istio.io/tlsMode"}

// labelProblems checks extra labels: valid Kubernetes label keys and values, none reserved.
// injectionHint says which field sets the injection labels instead.
func labelProblems(labels map[string]string, injectionHint string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		switch {
		case k == "istio-injection" || k == "sidecar.istio.io/inject":
			out = append(out, fmt.Sprintf("%s is reserved: %s", k, injectionHint))
		case oneOf(k, ReservedLabels):
			out = append(out, fmt.Sprintf("%s is reserved: egressconf sets it (reserved: %s)", k, strings.Join(ReservedLabels, ", ")))
		default:
			for _, e := range validation.IsQualifiedName(k) {
				out = append(out, fmt.Sprintf("key %q: %s", k, e))
			}
			for _, e := range validation.IsValidLabelValue(labels[k]) {
				out = append(out, fmt.Sprintf("%s: value %q: %s", k, labels[k], e))
			}
		}
	}
	return out
}

var idPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]{2}$`)

// Validate checks the whole catalog before anything touches a cluster. Every problem is reported,
// each naming its file, line where known, and field.
func Validate(c *Catalog, o ValidateOptions) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seenID := map[string]string{}
	seenGroup := map[string]string{}
	for _, s := range c.Scenarios {
		f := s.File
		if s.APIVersion != APIVersion {
			add("%s: apiVersion: %q, want %q", f, s.APIVersion, APIVersion)
		}
		if s.Kind != "Scenario" {
			add("%s: kind: %q, want Scenario", f, s.Kind)
		}
		if s.Metadata.Name == "" {
			add("%s: metadata.name: required", f)
		}
		if s.Metadata.Group == "" {
			add("%s: metadata.group: required", f)
		} else if prev, dup := seenGroup[s.Metadata.Group]; dup {
			add("%s: metadata.group: %s is also the group of %s", f, s.Metadata.Group, prev)
		} else {
			seenGroup[s.Metadata.Group] = f
		}
		if !oneOf(s.Spec.Profile, Profiles) {
			add("%s: %s: spec.profile: %q, want one of %s", f, s.lineAt("spec.profile"), s.Spec.Profile, strings.Join(Profiles, ", "))
		}
		if len(s.Spec.Sources) == 0 {
			add("%s: %s: spec.sources: at least one source document is required", f, s.lineAt("spec.sources"))
		}
		if !oneOf(s.Spec.MeshPolicy, MeshPolicies) {
			add("%s: %s: spec.meshPolicy: %q, want one of %s", f, s.lineAt("spec.meshPolicy"), s.Spec.MeshPolicy, strings.Join(MeshPolicies, ", "))
		}
		for i, g := range s.Spec.Gateways {
			if o.Gateways != nil && !oneOf(g, o.Gateways) {
				add("%s: %s: spec.gateways[%d]: unknown gateway %q; known: %s", f, s.lineAt(fmt.Sprintf("spec.gateways[%d]", i)), i, g, strings.Join(o.Gateways, ", "))
			}
		}
		drifts := map[string]bool{}
		for i, d := range s.Spec.Drifts {
			if d.ID == "" || len(d.Sides) < 2 || d.Verdict == "" {
				add("%s: %s: spec.drifts[%d]: id, two sides and a verdict are required", f, s.lineAt(fmt.Sprintf("spec.drifts[%d]", i)), i)
			}
			drifts[d.ID] = true
		}
		namespaces := map[string]Namespace{}
		for i, n := range s.Spec.Namespaces {
			field := fmt.Sprintf("spec.namespaces[%d]", i)
			if n.Name == "" {
				add("%s: %s: %s.name: required", f, s.lineAt(field), field)
			}
			for _, msg := range labelProblems(n.Labels, "istio-injection is set by the injection field") {
				add("%s: %s: %s.labels: %s", f, s.lineAt(field+".labels"), field, msg)
			}
			namespaces[n.Name] = n
		}
		workloads := map[string]Workload{}
		for i, w := range s.Spec.Workloads {
			field := fmt.Sprintf("spec.workloads[%d]", i)
			at := func(sub string) string { return s.lineAt(field + sub) }
			if w.Name == "" || w.Namespace == "" {
				add("%s: %s: %s: name and namespace are required", f, at(""), field)
				continue
			}
			if _, dup := workloads[w.Ref()]; dup {
				add("%s: %s: %s: workload %s declared twice", f, at(""), field, w.Ref())
			}
			ns, declared := namespaces[w.Namespace]
			switch {
			case w.Gateway:
				if !oneOf(w.Name, s.Spec.Gateways) {
					add("%s: %s: %s: gateway workload %s is not in spec.gateways", f, at(""), field, w.Ref())
				}
			case !oneOf(w.Fixture, Fixtures):
				add("%s: %s: %s.fixture: %q, want %s", f, at(".fixture"), field, w.Fixture, fixtureChoice())
			case !declared:
				add("%s: %s: %s.namespace: namespace %s is not declared in spec.namespaces", f, at(".namespace"), field, w.Namespace)
			case !ns.Injected() && w.Sidecar != nil && *w.Sidecar:
				add("%s: %s: %s.sidecar: true, but namespace %s has injection: false, where Istio injects no pod", f, at(".sidecar"), field, w.Namespace)
			}
			for _, msg := range labelProblems(w.Labels, "sidecar injection is set by the sidecar field") {
				add("%s: %s: %s.labels: %s", f, at(".labels"), field, msg)
			}
			workloads[w.Ref()] = w
		}
		deployed := map[string]bool{}
		for _, w := range s.Spec.Workloads {
			deployed[w.Ref()] = !w.Deferred
		}
		applied := map[string]bool{}
		conditional := map[string]bool{} // applied with requires, not deleted since
		idsSoFar := map[string]bool{}
		for si, st := range s.Spec.Steps {
			field := fmt.Sprintf("spec.steps[%d]", si)
			if st.Name == "" {
				add("%s: %s: %s.name: required", f, s.lineAt(field), field)
			}
			if st.MeshPolicy != "" && !oneOf(st.MeshPolicy, MeshPolicies) {
				add("%s: %s: %s.meshPolicy: %q, want one of %s", f, s.lineAt(field+".meshPolicy"), field, st.MeshPolicy, strings.Join(MeshPolicies, ", "))
			}
			for i, r := range st.Delete {
				if !applied[r.Key()] {
					add("%s: %s: %s.delete[%d]: %s was not applied by an earlier step", f, s.lineAt(fmt.Sprintf("%s.delete[%d]", field, i)), field, i, r.Key())
				}
				delete(applied, r.Key())
				delete(conditional, r.Key())
			}
			for i, ref := range st.Remove {
				if _, ok := workloads[ref]; !ok {
					add("%s: %s: %s.remove[%d]: unknown workload %s", f, s.lineAt(fmt.Sprintf("%s.remove[%d]", field, i)), field, i, ref)
				}
				deployed[ref] = false
			}
			for i, ref := range st.Deploy {
				if _, ok := workloads[ref]; !ok {
					add("%s: %s: %s.deploy[%d]: unknown workload %s", f, s.lineAt(fmt.Sprintf("%s.deploy[%d]", field, i)), field, i, ref)
				}
				deployed[ref] = true
			}
			for i, r := range st.Apply {
				rf := fmt.Sprintf("%s.apply[%d]", field, i)
				if r.Requires != "" && !oneOf(r.Requires, Capabilities) {
					add("%s: %s: %s.requires: unknown capability %q", f, s.lineAt(rf+".requires"), rf, r.Requires)
				}
				objs, err := s.Objects(r)
				if err != nil {
					add("%s: %s: %s: %v", f, s.lineAt(rf), rf, err)
					continue
				}
				for _, obj := range objs {
					if err := validateObject(obj, o); err != nil {
						add("%s: %s: %s %s/%s: %v", s.resourcePath(r.File), rf, obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
					}
				}
				applied[r.Key()] = true
				if r.Requires != "" {
					conditional[r.Key()] = true
				}
			}
			for ei, e := range st.Expect {
				ef := fmt.Sprintf("%s %s (%s.expect[%d])", s.lineOf(e.ID), e.ID, field, ei)
				if !idPattern.MatchString(e.ID) {
					add("%s: %s: id %q is not of the form PREFIX-NN", f, ef, e.ID)
				}
				if prev, dup := seenID[e.ID]; dup {
					add("%s: %s: duplicate expectation ID %s (also in %s)", f, ef, e.ID, prev)
				}
				seenID[e.ID] = f
				if e.Kind != "documented" && e.Kind != "derived" {
					add("%s: %s.kind: %q, want documented or derived", f, ef, e.Kind)
				}
				if e.Drift != "" && !drifts[e.Drift] {
					add("%s: %s.drift: %s is not recorded in spec.drifts", f, ef, e.Drift)
				}
				if e.Requires != "" && !oneOf(e.Requires, Capabilities) {
					add("%s: %s.requires: unknown capability %q", f, ef, e.Requires)
				}
				if why, ok := e.RegardlessReason(); ok && strings.TrimSpace(why) == "" {
					add("%s: %s.holdsRegardless: the reason why the expectation holds regardless of the changes before it is required (or leave the field out)", f, ef)
				}
				for i, k := range e.IndependentOf {
					if !conditional[k] {
						add("%s: %s.independentOf[%d]: %s is not a file applied with requires (and not deleted) by this or an earlier step", f, ef, i, k)
					}
				}
				if len(e.Checks) == 0 {
					add("%s: %s.checks: at least one check is required", f, ef)
				}
				for ci, c := range e.Checks {
					cf := fmt.Sprintf("%s.checks[%d]", ef, ci)
					switch {
					case c.Log != nil && (c.Curl != "" || c.From != "" || c.Expect != nil):
						add("%s: %s: a check is a probe (from, curl, expect) or a log check, not both", f, cf)
					case c.Log != nil && c.UnknownHost:
						add("%s: %s.unknownHost: only for a probe check (curl)", f, cf)
					case c.Log != nil:
						w, ok := workloads[c.Log.Workload]
						if !ok {
							add("%s: %s.log.workload: undeclared workload %s", f, cf, c.Log.Workload)
						} else if !w.Gateway && !w.HasSidecar() {
							add("%s: %s.log.workload: %s has no sidecar, so no proxy log", f, cf, c.Log.Workload)
						}
						if c.Log.After != "" && !idsSoFar[c.Log.After] && c.Log.After != e.ID {
							add("%s: %s.log.after: %s is not an earlier expectation of this scenario", f, cf, c.Log.After)
						}
						if err := c.Log.Entry.Validate(); err != nil {
							add("%s: %s.log.entry.%v", f, cf, err)
						}
					default:
						w, ok := workloads[c.From]
						switch {
						case c.From == "":
							add("%s: %s.from: required", f, cf)
						case !ok:
							add("%s: %s.from: probe from undeclared workload %s", f, cf, c.From)
						case w.Gateway:
							add("%s: %s.from: probes run from client workloads, not from gateway %s", f, cf, c.From)
						case w.Fixture == "httpbin":
							add("%s: %s.from: %s is an httpbin fixture, whose image has no curl: probe from a sleep or nginx workload", f, cf, c.From)
						case !deployed[c.From]:
							add("%s: %s.from: workload %s is not deployed at this step", f, cf, c.From)
						}
						if c.Curl == "" {
							add("%s: %s.curl: required", f, cf)
						} else if c.Request != nil {
							if msg := s.checkHost(c.Request.Scheme, c.Request.Host, c.Request.Port, c.UnknownHost); msg != "" {
								add("%s: %s.curl: %s", f, cf, msg)
							}
						}
						if c.UnknownHost && c.Curl == "" {
							add("%s: %s.unknownHost: only for a probe check (curl)", f, cf)
						}
						if c.Expect == nil {
							add("%s: %s.expect: required", f, cf)
						} else if err := c.Expect.Validate(); err != nil {
							add("%s: %s.expect.%v", f, cf, err)
						} else if n := len(c.Expect.Hops); n > 1 && c.Request != nil && !c.Request.FollowRedirects {
							// Without -L curl stops at the first response: such an expectation could never hold.
							add("%s: %s.expect.hops: %d responses, but the curl has no -L, so curl receives one", f, cf, n)
						}
					}
				}
				idsSoFar[e.ID] = true
			}
		}
	}
	return errors.Join(errs...)
}

func validateObject(obj *unstructured.Unstructured, o ValidateOptions) error {
	if err := convergible(obj); err != nil {
		return err
	}
	objs := []*unstructured.Unstructured{obj}
	if o.ExpandObject != nil {
		expanded, err := o.ExpandObject(obj)
		if err != nil {
			return err
		}
		objs = expanded
	}
	if o.Objects == nil {
		return nil
	}
	var errs []error
	for _, x := range objs {
		if err := o.Objects(x); err != nil {
			if x != obj {
				err = fmt.Errorf("generated %s %s/%s: %w", x.GetKind(), x.GetNamespace(), x.GetName(), err)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// convergible refuses a kind whose arrival in the mesh no backend can wait for: convergence follows
// Istio's objects into istiod and the proxies, waits on the effect of a translated kind
// (ASMEgressTrafficPolicy) in istiod, and a NetworkPolicy is the CNI's (its expectations need the
// networkpolicy capability). Anything else would let a negative check run before its cause took effect.
func convergible(obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	switch {
	case strings.HasSuffix(gvk.Group, ".istio.io"):
	case gvk.Group == "networking.k8s.io" && gvk.Kind == "NetworkPolicy":
	case gvk.Group == "istio.alibabacloud.com" && gvk.Kind == "ASMEgressTrafficPolicy":
	default:
		return fmt.Errorf("apiVersion %s, kind %s: not a kind a scenario can apply (Istio's networking and security kinds, NetworkPolicy, ASMEgressTrafficPolicy): no backend can tell when it has taken effect", obj.GetAPIVersion(), gvk.Kind)
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// checkHost says what is wrong with a probe's target host and port, or "": an external host must
// be declared (the catalog's hosts.yaml or the scenario's spec.hosts) with that port and protocol,
// unless the check says the host is meant to be unknown. IP addresses and in-cluster names are
// the mesh's, not the stand-in's.
func (s *Scenario) checkHost(scheme, host string, port int, unknown bool) string {
	if net.ParseIP(strings.Trim(host, "[]")) != nil || s.InClusterName(host) {
		if unknown {
			return fmt.Sprintf("unknownHost: %s is not an external host name (an IP address or an in-cluster name)", host)
		}
		return ""
	}
	h, file, declared := s.ExternalHost(host)
	switch {
	case unknown && declared:
		return fmt.Sprintf("unknownHost: host %s is declared in %s, so the stand-in and its DNS know it", host, file)
	case unknown:
		return ""
	case !declared:
		if s.hostsFile == "" {
			return fmt.Sprintf("host %s is not declared: the catalog has no %s (at its root, beside the scenario directories) and the scenario's spec.hosts does not list it (declare it, or set unknownHost: true on the check when it is meant to be unknown)", host, HostsFile)
		}
		return fmt.Sprintf("host %s is not declared in %s or in the scenario's spec.hosts (declare it, or set unknownHost: true on the check when it is meant to be unknown)", host, s.hostsFile)
	}
	proto, ok := h.Serves(port)
	switch {
	case !ok:
		return fmt.Sprintf("host %s (declared in %s) does not declare port %d (its ports: %s)", host, file, port, portList(h))
	case proto != scheme:
		return fmt.Sprintf("port %d of host %s (declared in %s) is %s, the curl uses %s", port, host, file, proto, scheme)
	}
	return ""
}

func portList(h standin.Host) string {
	var out []string
	for _, p := range h.PortList() {
		out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	return strings.Join(out, ", ")
}

// InClusterName reports whether host names something of the cluster rather than the internet: a
// short name (no dot; an external host is fully qualified), a Service by its namespace
// (<name>.<namespace> for a namespace the scenario declares or uses, or istio-system), or a
// name under .svc or .svc.<cluster domain>.
func (s *Scenario) InClusterName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if !strings.Contains(host, ".") || strings.HasSuffix(host, ".svc") || strings.Contains(host, ".svc.") {
		return true
	}
	_, ns, _ := strings.Cut(host, ".")
	if ns == "istio-system" {
		return true
	}
	for _, n := range s.Spec.Namespaces {
		if n.Name == ns {
			return true
		}
	}
	for _, w := range s.Spec.Workloads {
		if w.Namespace == ns {
			return true
		}
	}
	return false
}
