package asm

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// Group is the API group of ASMEgressTrafficPolicy.
	Group = "istio.alibabacloud.com"
	// Kind is the kind of an egress traffic policy.
	Kind = "ASMEgressTrafficPolicy"
	// ListKind is the kind of a list of policies.
	ListKind = "ASMEgressTrafficPolicyList"
	// Plural is the resource name of the CRD.
	Plural = "asmegresstrafficpolicies"
	// Singular is the singular resource name of the CRD.
	Singular = "asmegresstrafficpolicy"
	// CRDName is the name of the CustomResourceDefinition.
	CRDName = Plural + "." + Group

	// RequiredNamespace is the only namespace a policy may live in ("This value is fixed to
	// istio-egress", both seeds).
	RequiredNamespace = "istio-egress"

	// MaxHosts is the largest number of hosts one `to` entry may list (Alibaba's published types:
	// MinItems=1, MaxItems=50).
	MaxHosts = 50
)

// Protocols a destination port may use, in the order the CRD's enum lists them.
const (
	ProtocolHTTP  = "HTTP"
	ProtocolHTTPS = "HTTPS"
	ProtocolTLS   = "TLS"
	ProtocolTCP   = "TCP"
)

// Protocols lists the supported destination protocols.
var Protocols = []string{ProtocolHTTP, ProtocolHTTPS, ProtocolTLS, ProtocolTCP}

var (
	// SchemeGroupVersion is the hub (storage) version, v1, the one the documents use.
	SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: "v1"}
	// SchemeGroupVersionV1beta1 is the version of Alibaba's published Go types. Same schema as v1.
	SchemeGroupVersionV1beta1 = schema.GroupVersion{Group: Group, Version: "v1beta1"}
)

// Policy is an ASMEgressTrafficPolicy, istio.alibabacloud.com/v1. It is the version every other one
// converts to; Parse, Validate and Translate work on it.
//
// Field names follow the documents (and Alibaba's published Go types) exactly. Parsing goes through
// the json tags (YAML is converted to JSON first, as Kubernetes does); the yaml tags are the same
// names for callers that encode the spec with a YAML library directly.
type Policy struct {
	metav1.TypeMeta   `json:",inline" yaml:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty" yaml:"metadata,omitempty"`

	Spec   Spec   `json:"spec" yaml:"spec"`
	Status Status `json:"status,omitempty" yaml:"status,omitempty"`
}

// Spec is the body of a policy: which gateway, and the rules.
type Spec struct {
	// ByEgressGateway names the egress gateway all rules go through. Required, with a name.
	ByEgressGateway *ByEgressGateway `json:"byEgressGateway,omitempty" yaml:"byEgressGateway,omitempty"`
	// EgressRules: at least one.
	EgressRules []EgressRule `json:"egressRules,omitempty" yaml:"egressRules,omitempty"`
}

// ByEgressGateway selects the egress gateway (spec level: name) or the gateway port a destination
// is carried on (to level: port). The published types share one struct for both places.
type ByEgressGateway struct {
	// Name of the egress gateway. Required at spec level; at `to` level it may be omitted or must
	// repeat the spec-level name (one gateway per policy).
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Port is the gateway port (a port of the gateway's Service), 1..65535. At `to` level, when
	// unset the port is allocated (see AllocateGatewayPorts). At spec level it has no documented
	// meaning and the translation does not use it.
	Port *int32 `json:"port,omitempty" yaml:"port,omitempty"`
}

// EgressRule says which workloads (from) may reach which destinations (to).
type EgressRule struct {
	// Name is optional and informational.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// From: at least one source.
	From []From `json:"from,omitempty" yaml:"from,omitempty"`
	// To: at least one destination.
	To []To `json:"to,omitempty" yaml:"to,omitempty"`
}

// From is a source: a namespace, optionally narrowed to the workloads with these labels.
type From struct {
	// Namespace is required.
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	// WorkloadSelector are pod labels; all must match. Empty: every workload of the namespace.
	WorkloadSelector map[string]string `json:"workloadSelector,omitempty" yaml:"workloadSelector,omitempty"`
}

// To is a destination: external hosts on one port, reached through the egress gateway.
type To struct {
	// Name identifies the destination in generated object names. Optional: when empty it is
	// derived from the first host and the port number.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Hosts are 1..50 DNS names ("multiple hosts must resolve to the same IP addresses").
	Hosts []string `json:"hosts,omitempty" yaml:"hosts,omitempty"`
	// Port the workloads use to reach the hosts. Required.
	Port *Port `json:"port,omitempty" yaml:"port,omitempty"`
	// ByEgressGateway.Port is the gateway port the sidecar sends this destination to.
	ByEgressGateway *ByEgressGateway `json:"byEgressGateway,omitempty" yaml:"byEgressGateway,omitempty"`
	// HTTPSUpgrade makes the gateway originate TLS to the hosts (HTTP destinations only).
	HTTPSUpgrade *HTTPSUpgrade `json:"httpsUpgrade,omitempty" yaml:"httpsUpgrade,omitempty"`
}

// Port is the destination port: the same shape as Istio's networking Port, which the published
// types embed.
type Port struct {
	Number   int32  `json:"number,omitempty" yaml:"number,omitempty"`
	Protocol string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Name     string `json:"name,omitempty" yaml:"name,omitempty"`
	// TargetPort is accepted because Istio's Port has it; it becomes the ServiceEntry port's
	// targetPort (the port actually dialled on the external host).
	TargetPort int32 `json:"targetPort,omitempty" yaml:"targetPort,omitempty"`
}

// HTTPSUpgrade: "If this value is set to false, the value of the port parameter under
// httpsUpgrade does not take effect."
type HTTPSUpgrade struct {
	Enabled bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Port the gateway connects to with TLS (443 in the documents). Required when enabled.
	Port int32 `json:"port,omitempty" yaml:"port,omitempty"`
}

// Status is what ASM's controller writes. egressconf never writes it; it is accepted so that a
// policy read back from an ASM cluster parses.
type Status struct {
	Status  string `json:"status,omitempty" yaml:"status,omitempty"`
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
	// AutoAllocatedGatewayPorts maps "<hosts[0]>-<port>" to the allocated gateway port.
	AutoAllocatedGatewayPorts map[string]uint32 `json:"autoAllocatedGatewayPorts,omitempty" yaml:"autoAllocatedGatewayPorts,omitempty"`
}

// PolicyV1beta1 is an ASMEgressTrafficPolicy, istio.alibabacloud.com/v1beta1, the version of
// Alibaba's published Go types. Its schema is identical to v1; ToV1 converts it.
type PolicyV1beta1 struct {
	metav1.TypeMeta   `json:",inline" yaml:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty" yaml:"metadata,omitempty"`

	Spec   SpecV1beta1   `json:"spec" yaml:"spec"`
	Status StatusV1beta1 `json:"status,omitempty" yaml:"status,omitempty"`
}

// SpecV1beta1 is the v1beta1 spec. Same fields as Spec.
type SpecV1beta1 Spec

// StatusV1beta1 is the v1beta1 status. Same fields as Status.
type StatusV1beta1 Status

// ToV1 converts a v1beta1 policy to v1. The schemas are the same: only apiVersion changes. The
// result shares no memory with the input.
func (in *PolicyV1beta1) ToV1() *Policy {
	if in == nil {
		return nil
	}
	spec := Spec(in.Spec)
	status := Status(in.Status)
	return &Policy{
		TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: Kind},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec:       *spec.DeepCopy(),
		Status:     *status.DeepCopy(),
	}
}

// ToV1beta1 converts a v1 policy to v1beta1 (for writing to a cluster that serves only v1beta1).
func (in *Policy) ToV1beta1() *PolicyV1beta1 {
	if in == nil {
		return nil
	}
	return &PolicyV1beta1{
		TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersionV1beta1.String(), Kind: Kind},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec:       SpecV1beta1(*in.Spec.DeepCopy()),
		Status:     StatusV1beta1(*in.Status.DeepCopy()),
	}
}

// DeepCopy returns a copy of the policy sharing no memory with it.
func (in *Policy) DeepCopy() *Policy {
	if in == nil {
		return nil
	}
	return &Policy{
		TypeMeta:   in.TypeMeta,
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec:       *in.Spec.DeepCopy(),
		Status:     *in.Status.DeepCopy(),
	}
}

// DeepCopy returns a copy of the spec sharing no memory with it.
func (in *Spec) DeepCopy() *Spec {
	out := &Spec{ByEgressGateway: in.ByEgressGateway.deepCopy()}
	if in.EgressRules != nil {
		out.EgressRules = make([]EgressRule, len(in.EgressRules))
		for i, r := range in.EgressRules {
			out.EgressRules[i] = r.deepCopy()
		}
	}
	return out
}

// DeepCopy returns a copy of the status sharing no memory with it.
func (in *Status) DeepCopy() *Status {
	out := &Status{Status: in.Status, Message: in.Message}
	if in.AutoAllocatedGatewayPorts != nil {
		out.AutoAllocatedGatewayPorts = make(map[string]uint32, len(in.AutoAllocatedGatewayPorts))
		for k, v := range in.AutoAllocatedGatewayPorts {
			out.AutoAllocatedGatewayPorts[k] = v
		}
	}
	return out
}

func (in *ByEgressGateway) deepCopy() *ByEgressGateway {
	if in == nil {
		return nil
	}
	out := &ByEgressGateway{Name: in.Name}
	if in.Port != nil {
		p := *in.Port
		out.Port = &p
	}
	return out
}

func (in EgressRule) deepCopy() EgressRule {
	out := EgressRule{Name: in.Name}
	if in.From != nil {
		out.From = make([]From, len(in.From))
		for i, f := range in.From {
			out.From[i] = From{Namespace: f.Namespace}
			if f.WorkloadSelector != nil {
				out.From[i].WorkloadSelector = make(map[string]string, len(f.WorkloadSelector))
				for k, v := range f.WorkloadSelector {
					out.From[i].WorkloadSelector[k] = v
				}
			}
		}
	}
	if in.To != nil {
		out.To = make([]To, len(in.To))
		for i, t := range in.To {
			out.To[i] = t.deepCopy()
		}
	}
	return out
}

func (in To) deepCopy() To {
	out := To{Name: in.Name, ByEgressGateway: in.ByEgressGateway.deepCopy()}
	if in.Hosts != nil {
		out.Hosts = append([]string(nil), in.Hosts...)
	}
	if in.Port != nil {
		p := *in.Port
		out.Port = &p
	}
	if in.HTTPSUpgrade != nil {
		u := *in.HTTPSUpgrade
		out.HTTPSUpgrade = &u
	}
	return out
}

// upgradeEnabled reports whether the gateway upgrades this destination to HTTPS.
func (in *To) upgradeEnabled() bool {
	return in.HTTPSUpgrade != nil && in.HTTPSUpgrade.Enabled
}

// gatewayPort returns the explicit gateway port, or 0 when it is to be allocated.
func (in *To) gatewayPort() int32 {
	if in.ByEgressGateway == nil || in.ByEgressGateway.Port == nil {
		return 0
	}
	return *in.ByEgressGateway.Port
}

// Int32 returns a pointer to v, for building policies in code.
func Int32(v int32) *int32 { return &v }
