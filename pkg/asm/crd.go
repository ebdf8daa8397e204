package asm

import (
	_ "embed"
)

//go:embed crd.yaml
var crdYAML []byte

// CRD returns the CustomResourceDefinition asmegresstrafficpolicies.istio.alibabacloud.com
// (apiextensions.k8s.io/v1, YAML): namespaced, versions v1 (storage) and v1beta1 with the same
// OpenAPI v3 schema. The schema enforces the documents' rules that OpenAPI and CEL can express;
// the namespace rule (istio-egress) and the rules across destinations are enforced by Validate
// only (see the comment at the top of the file). The returned slice is a copy.
func CRD() []byte {
	return append([]byte(nil), crdYAML...)
}
