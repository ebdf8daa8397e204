// Package istiovalidate checks Istio resources with Istio's own validation, the same calls istiod's
// validating webhook makes, so a catalog error shows before anything touches a cluster.
package istiovalidate

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
)

// Object validates one object. Objects outside Istio's API groups are not Istio's to judge and pass;
// an Istio group with an unknown kind is an error, as the webhook answers.
func Object(u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	if !strings.HasSuffix(gvk.Group, ".istio.io") {
		return nil
	}
	s, ok := collections.Pilot.FindByGroupKind(resource.FromKubernetesGVK(&gvk))
	if !ok {
		return fmt.Errorf("unrecognized Istio type %s", gvk)
	}
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	var obj crd.IstioKind
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("cannot decode: %v", err)
	}
	cfg, err := crd.ConvertObject(s, &obj, "cluster.local")
	if err != nil {
		return fmt.Errorf("cannot decode spec: %v", err)
	}
	if _, err := s.ValidateConfig(*cfg); err != nil {
		return fmt.Errorf("rejected by Istio's validation: %v", err)
	}
	return nil
}
