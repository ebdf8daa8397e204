// Package asm supports Alibaba Cloud Service Mesh's ASMEgressTrafficPolicy
// (istio.alibabacloud.com, v1 and v1beta1) on any Istio.
//
// Upstream Istio has no controller for the CRD. This package reads a policy (Parse), checks it
// against the rules of the documents (Validate, and the CRD schema returned by CRD), and
// translates it (Translate) into the native Istio resources — ServiceEntry, Gateway,
// DestinationRule, VirtualService — that produce the documented outcomes through a given egress
// gateway. Every generated object carries GeneratedLabels, so GeneratedLabelSelector selects
// exactly what to delete when the policy is deleted.
//
// On a cluster where ASM serves the CRD, the policy is applied as is and nothing here is used but
// Parse and Validate. See docs/asm-egress-traffic-policy.md for the field-by-field mapping.
package asm
