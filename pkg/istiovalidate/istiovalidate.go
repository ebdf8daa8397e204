// Package istiovalidate checks Istio resources with Istio's own validation, the same calls istiod's
// validating webhook makes, so a catalog error shows before anything touches a cluster.
package istiovalidate

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"google.golang.org/protobuf/proto"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	"istio.io/istio/pkg/util/protomarshal"
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
	if err := strictSpec(s, u); err != nil {
		return err
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

// strictSpec refuses a spec field Istio's API does not have. Istio's decoder drops unknown fields and
// the API server prunes them with only a warning, so a misspelt field would silently change nothing.
func strictSpec(s resource.Schema, u *unstructured.Unstructured) error {
	spec, ok := u.Object["spec"]
	if !ok {
		return nil
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	inst, err := s.NewInstance()
	if err != nil {
		return err
	}
	msg, ok := inst.(proto.Message)
	if !ok {
		return nil
	}
	if err := protomarshal.ApplyJSONStrict(string(raw), msg); err != nil {
		return fmt.Errorf("spec is not a valid %s: %v", s.Kind(), err)
	}
	return nil
}
