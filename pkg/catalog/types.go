// Package catalog holds the documented egress scenarios as data: groups of ordered steps, each step
// changing the mesh and then checking expectations that carry the IDs of SCENARIOS.md.
//
// A scenario is a directory with a scenario.yaml and the Istio resource files it applies, kept as the
// source document gives them. Nothing here talks to a cluster; see pkg/runner for execution.
package catalog

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
)

// APIVersion is the version of the scenario file format.
const APIVersion = "egressconf.io/v1alpha1"

// Catalog is every scenario loaded from one or more directories, in group order.
type Catalog struct {
	Scenarios []*Scenario
	// Hosts are every external host of the catalog, what the stand-in internet serves and the
	// DNS of a hermetic run resolves to it: the hosts.yaml at the root of each catalog directory,
	// then every scenario's spec.hosts, each name once (Load refuses one name declared twice
	// differently).
	Hosts []standin.Host
}

// Scenario is one group of SCENARIOS.md (G1, G2, ...): a setup and ordered steps.
type Scenario struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// Dir is the directory the scenario was read from; resource files are relative to it.
	Dir string `yaml:"-"`
	// File is the scenario.yaml path, for error messages.
	File string `yaml:"-"`

	fsys  fs.FS
	lines map[string]int
	// fieldLines maps a field path (spec.workloads[0].labels) to its line, for error messages.
	fieldLines map[string]int
	// catalogHosts are the hosts of the scenario's catalog's hosts.yaml (hostsFile; "" when the
	// catalog has none).
	catalogHosts []standin.Host
	hostsFile    string
}

// Metadata names a scenario.
type Metadata struct {
	// Name is the short name used on the command line (e.g. deny-namespace).
	Name string `yaml:"name"`
	// Group is the SCENARIOS.md group (G1..G13).
	Group string `yaml:"group"`
}

// Spec is the body of a scenario.
type Spec struct {
	Title string `yaml:"title"`
	// Profile is the conformance profile this group belongs to (istio-native, asm-egress-traffic-policy).
	Profile string `yaml:"profile"`
	// Sources are the documents this scenario comes from.
	Sources []Citation `yaml:"sources"`
	// Drifts record where two sources disagree and what the catalog decided.
	Drifts []Drift `yaml:"drifts,omitempty"`
	// Gateways the scenario needs, by fixture name (see fixtures/).
	Gateways []string `yaml:"gateways,omitempty"`
	// MeshPolicy is the outbound traffic policy in force when the scenario starts.
	MeshPolicy string `yaml:"meshPolicy"`
	// Namespaces the scenario creates (with injection unless Injection is false).
	Namespaces []Namespace `yaml:"namespaces,omitempty"`
	// Workloads are the clients and servers the steps deploy or probe from.
	Workloads []Workload `yaml:"workloads"`
	Steps     []Step     `yaml:"steps"`
	// Hosts are external hosts only this scenario needs, in the schema of the catalog's hosts.yaml
	// (docs/catalog.md, "External hosts").
	Hosts []standin.Host `yaml:"hosts,omitempty"`
}

// Citation points at a source document and a section of it.
type Citation struct {
	Doc     string `yaml:"doc"`
	Section string `yaml:"section,omitempty"`
	// Says quotes or paraphrases what the document states, where it matters for a verdict.
	Says string `yaml:"says,omitempty"`
}

// Drift is a documented disagreement between two sources and the catalog's verdict on it.
type Drift struct {
	ID      string     `yaml:"id"`
	Sides   []Citation `yaml:"sides"`
	Verdict string     `yaml:"verdict"`
}

// Namespace is a namespace the scenario needs.
type Namespace struct {
	Name string `yaml:"name"`
	// Injection enables sidecar injection (label istio-injection=enabled). Default true.
	Injection *bool `yaml:"injection,omitempty"`
	// Labels are extra namespace labels (a NetworkPolicy namespaceSelector selects on them).
	Labels map[string]string `yaml:"labels,omitempty"`
}

// Injected reports whether sidecar injection is on for the namespace.
func (n Namespace) Injected() bool { return n.Injection == nil || *n.Injection }

// Workload is a fixture deployment a probe runs from or a log is read from.
type Workload struct {
	// Name is the Deployment name and app label (sleep, sleep-a, nginx...).
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
	// Fixture is the template in fixtures/ (sleep, nginx, httpbin).
	Fixture string `yaml:"fixture"`
	// ServiceAccount defaults to Name for sleep and httpbin fixtures, "default" otherwise.
	ServiceAccount string `yaml:"serviceAccount,omitempty"`
	// Labels are extra pod labels (workloadSelector, AuthorizationPolicy selector).
	Labels map[string]string `yaml:"labels,omitempty"`
	// Sidecar is false for a pod that opts out of injection (sidecar.istio.io/inject: "false").
	Sidecar *bool `yaml:"sidecar,omitempty"`
	// Deferred workloads are not deployed at setup but by a step's deploy.
	Deferred bool `yaml:"deferred,omitempty"`
	// Gateway marks a gateway workload (an egress gateway pod): probes never run from it, logs are read.
	Gateway bool `yaml:"gateway,omitempty"`
}

// HasSidecar reports whether the workload's pods carry a sidecar.
func (w Workload) HasSidecar() bool { return w.Sidecar == nil || *w.Sidecar }

// Ref is the workload's reference as written in steps: name@namespace.
func (w Workload) Ref() string { return w.Name + "@" + w.Namespace }

// SA is the workload's ServiceAccount name.
func (w Workload) SA() string {
	if w.ServiceAccount != "" {
		return w.ServiceAccount
	}
	if w.Fixture == "sleep" || w.Fixture == "httpbin" {
		return w.Name
	}
	return "default"
}

// Step changes the mesh and then checks expectations. Its actions run in this fixed order:
// meshPolicy, delete, remove, deploy, apply, then the expectations in order.
type Step struct {
	Name string `yaml:"name"`
	// MeshPolicy sets outboundTrafficPolicy.mode (ALLOW_ANY or REGISTRY_ONLY).
	MeshPolicy string `yaml:"meshPolicy,omitempty"`
	// Delete removes the objects of these resource files (applied earlier).
	Delete []Resources `yaml:"delete,omitempty"`
	// Remove undeploys workloads by ref.
	Remove []string `yaml:"remove,omitempty"`
	// Deploy deploys deferred workloads by ref.
	Deploy []string `yaml:"deploy,omitempty"`
	// Apply creates or updates the objects of these resource files.
	Apply  []Resources   `yaml:"apply,omitempty"`
	Expect []Expectation `yaml:"expect,omitempty"`
	// Serial runs the step's checks one after another on a live mesh, for a step whose outcome
	// depends on how many requests are in flight (a connection-pool limit, outlier detection).
	// By default every probe check of a step starts as soon as the step converged.
	Serial bool `yaml:"serial,omitempty"`
}

// Resources is one resource file of the scenario, optionally applied into a namespace (kubectl -n).
type Resources struct {
	File      string `yaml:"file"`
	Namespace string `yaml:"namespace,omitempty"`
	// Requires names a capability the cluster must have for this file (e.g. networkpolicy);
	// on a backend without it the expectations after this step are skipped with the reason.
	Requires string `yaml:"requires,omitempty"`
}

// Key identifies the applied copy: the same file applied in two namespaces is two copies.
func (r Resources) Key() string {
	if r.Namespace == "" {
		return r.File
	}
	return r.File + "@" + r.Namespace
}

// Expectation is one ID of SCENARIOS.md: one or more checks that must all hold.
type Expectation struct {
	ID string `yaml:"id"`
	// Kind is documented (a seed states it) or derived (follows from a seed).
	Kind   string    `yaml:"kind"`
	Source *Citation `yaml:"source,omitempty"`
	// Drift names the Drift entry this expectation's verdict comes from.
	Drift string `yaml:"drift,omitempty"`
	// Requires names a capability (e.g. networkpolicy); without it the expectation is skipped.
	Requires string `yaml:"requires,omitempty"`
	// IndependentOf lists resource files (as applied: file, or file@namespace) whose apply may be
	// skipped for a missing capability without affecting this expectation. An expectation after
	// a skipped apply is otherwise skipped with that reason: it would be checked on a mesh the
	// step did not build.
	IndependentOf []string `yaml:"independentOf,omitempty"`
	// HoldsRegardless declares, with the reason, that the expectation is meant to hold whether or
	// not the changes before it are made (a baseline, a "still works" check): the mutation check
	// (pkg/mutate) then does not require its verdict to flip when one of them is left out. Nil
	// for every other expectation; an empty reason is refused by Validate.
	HoldsRegardless *string `yaml:"holdsRegardless,omitempty"`
	Note            string  `yaml:"note,omitempty"`
	Checks          []Check `yaml:"checks"`
}

// RegardlessReason returns why the expectation holds regardless of the changes before it, and
// whether it says so at all.
func (e *Expectation) RegardlessReason() (string, bool) {
	if e.HoldsRegardless == nil {
		return "", false
	}
	return *e.HoldsRegardless, true
}

// IndependentOfFile reports whether the expectation declares it does not depend on the resource
// file with this key.
func (e *Expectation) IndependentOfFile(key string) bool {
	for _, k := range e.IndependentOf {
		if k == key {
			return true
		}
	}
	return false
}

// Check is a probe (a curl from a workload) or an access-log read.
type Check struct {
	// From is the workload ref the probe runs in.
	From string `yaml:"from,omitempty"`
	// Curl is the document's curl command line, e.g. "curl -I http://www.aliyun.com".
	Curl string `yaml:"curl,omitempty"`
	// Expect is the outcome the probe must show.
	Expect *outcome.Expected `yaml:"expect,omitempty"`
	// Log is an access-log check on a workload's proxy.
	Log *LogCheck `yaml:"log,omitempty"`
	// UnknownHost says the curl's host is meant to be unknown to the stand-in and its DNS (e.g.
	// to assert a DNS failure): Validate then does not require it to be declared, and refuses it
	// if it is.
	UnknownHost bool `yaml:"unknownHost,omitempty"`

	// Request is Curl parsed; filled by the loader.
	Request *probe.Request `yaml:"-"`
}

// LogCheck expects an access-log entry in a workload's proxy log written by an earlier probe
// of the same expectation or, with After, of a named expectation.
type LogCheck struct {
	Workload string `yaml:"workload"`
	// After is the ID of the expectation whose probes produced the entry (default: this one).
	After string `yaml:"after,omitempty"`
	// Host restricts the search to entries for this authority / SNI.
	Host  string              `yaml:"host,omitempty"`
	Entry outcome.LogExpected `yaml:"entry"`
}

// Description is a one-line human form of a check, for reports.
func (c Check) Description() string {
	if c.Log != nil {
		var parts []string
		for _, k := range c.Log.Entry.SortedKeys() {
			parts = append(parts, fmt.Sprintf("%s=%s", k, c.Log.Entry.Fields[k]))
		}
		return fmt.Sprintf("log(%s) %s", c.Log.Workload, strings.Join(parts, " "))
	}
	return fmt.Sprintf("%s: %s", c.From, c.Curl)
}

// Group returns the scenario with the given group ID or name.
func (c *Catalog) Group(nameOrID string) (*Scenario, error) {
	for _, s := range c.Scenarios {
		if s.Metadata.Group == nameOrID || s.Metadata.Name == nameOrID {
			return s, nil
		}
	}
	var valid []string
	for _, s := range c.Scenarios {
		valid = append(valid, s.Metadata.Group+" ("+s.Metadata.Name+")")
	}
	return nil, fmt.Errorf("unknown group %q; valid groups: %s", nameOrID, strings.Join(valid, ", "))
}

// IDs lists every expectation ID in catalog order.
func (c *Catalog) IDs() []string {
	var ids []string
	for _, s := range c.Scenarios {
		for _, st := range s.Spec.Steps {
			for _, e := range st.Expect {
				ids = append(ids, e.ID)
			}
		}
	}
	return ids
}

// Workload finds a workload by ref (name@namespace).
func (s *Scenario) Workload(ref string) (Workload, bool) {
	for _, w := range s.Spec.Workloads {
		if w.Ref() == ref {
			return w, true
		}
	}
	return Workload{}, false
}

// ExternalHosts are the external hosts the scenario may reach: its catalog's hosts.yaml, then its
// own spec.hosts (a name in both is the same host: Load refuses it otherwise).
func (s *Scenario) ExternalHosts() []standin.Host {
	out := append([]standin.Host(nil), s.catalogHosts...)
	for _, h := range s.Spec.Hosts {
		if _, ok := findHost(out, h.Name); !ok {
			out = append(out, h)
		}
	}
	return out
}

// ExternalHost returns the declared external host of this name (canonical form: lower case, no
// trailing dot), and where it is declared.
func (s *Scenario) ExternalHost(name string) (h standin.Host, file string, ok bool) {
	if h, ok := findHost(s.Spec.Hosts, name); ok {
		return h, s.File + " (spec.hosts)", true
	}
	if h, ok := findHost(s.catalogHosts, name); ok {
		return h, s.hostsFile, true
	}
	return standin.Host{}, "", false
}

func findHost(hosts []standin.Host, name string) (standin.Host, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, h := range hosts {
		if h.Name == name {
			return h, true
		}
	}
	return standin.Host{}, false
}
