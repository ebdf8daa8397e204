package live

import (
	"bytes"
	"context"
	"fmt"

	"go.yaml.in/yaml/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Where istiod reads its mesh config.
const (
	MeshConfigMap = "istio"
	MeshKey       = "mesh"
	// AnnotationOriginalMesh holds the mesh config as it was before the run changed it, on the
	// ConfigMap itself, so a person (or a later run) can see what Close puts back.
	AnnotationOriginalMesh = "egressconf.io/original-mesh"
	// AnnotationMeshRun names the run that changed the mesh config.
	AnnotationMeshRun = "egressconf.io/mesh-run"
)

// meshState remembers the mesh config before the run changed it.
type meshState struct {
	// original is the `mesh` value before the first change; nil when unchanged.
	original *string
}

// Outbound traffic policy modes.
const (
	AllowAny     = "ALLOW_ANY"
	RegistryOnly = "REGISTRY_ONLY"
)

// SetMeshPolicy implements backend.Backend: outboundTrafficPolicy.mode in istiod's mesh config.
// The first change of the run records the original config (also as an annotation); restoreMesh
// puts it back byte for byte. Another run's unrestored change is refused.
func (b *Backend) SetMeshPolicy(ctx context.Context, mode string) (err error) {
	defer explain(&err)
	if mode == "" {
		return nil
	}
	if mode != AllowAny && mode != RegistryOnly {
		return fmt.Errorf("unknown outbound traffic policy %q (want %s or %s)", mode, AllowAny, RegistryOnly)
	}
	if sc := b.sc; sc != nil && sc.skip != "" {
		return nil
	}
	changed := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		changed = false
		cm, err := b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("istiod's mesh config (ConfigMap %s/%s): %w", IstioNamespace, MeshConfigMap, err)
		}
		if run := cm.Annotations[AnnotationMeshRun]; run != "" && run != b.o.RunID {
			return fmt.Errorf("ConfigMap %s/%s carries a mesh config change of egressconf run %q that was not restored (another run is using this cluster, or one crashed: put back the %s annotation's value as key %s and remove the egressconf.io annotations)",
				IstioNamespace, MeshConfigMap, run, AnnotationOriginalMesh, MeshKey)
		}
		cur := cm.Data[MeshKey]
		next, err := setOutboundMode(cur, mode)
		if err != nil {
			return err
		}
		if next == cur {
			return nil
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		if cm.Annotations[AnnotationMeshRun] == "" {
			cm.Annotations[AnnotationOriginalMesh] = cur
			cm.Annotations[AnnotationMeshRun] = b.o.RunID
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[MeshKey] = next
		if _, err := b.cs.CoreV1().ConfigMaps(IstioNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if b.mesh.original == nil {
			orig := cm.Annotations[AnnotationOriginalMesh]
			b.mesh.original = &orig
		}
		changed = true
		return nil
	})
	if err != nil {
		return err
	}
	if changed && b.sc != nil {
		b.sc.pending.mesh = mode
	}
	return nil
}

// restoreMesh puts the mesh config back as it was before the run, and removes the annotations.
func (b *Backend) restoreMesh(ctx context.Context) error {
	_, err := b.restoreMeshMode(ctx)
	return err
}

// restoreMeshMode restores istiod's mesh config and returns the outbound traffic policy it put
// back ("" when the run had changed nothing), for the next convergence to wait for.
func (b *Backend) restoreMeshMode(ctx context.Context) (string, error) {
	if b.mesh.original == nil {
		return "", nil
	}
	mode, err := outboundMode(*b.mesh.original)
	if err != nil {
		return "", err
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[MeshKey] = *b.mesh.original
		delete(cm.Annotations, AnnotationOriginalMesh)
		delete(cm.Annotations, AnnotationMeshRun)
		_, err = b.cs.CoreV1().ConfigMaps(IstioNamespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("restore istiod's mesh config (ConfigMap %s/%s): %w", IstioNamespace, MeshConfigMap, err)
	}
	b.mesh.original = nil
	return mode, nil
}

// outboundMode reads outboundTrafficPolicy.mode from a mesh config (ALLOW_ANY when absent, as
// istiod defaults it).
func outboundMode(mesh string) (string, error) {
	var m struct {
		OutboundTrafficPolicy struct {
			Mode string `yaml:"mode"`
		} `yaml:"outboundTrafficPolicy"`
	}
	if err := yaml.Unmarshal([]byte(mesh), &m); err != nil {
		return "", fmt.Errorf("mesh config: %w", err)
	}
	if m.OutboundTrafficPolicy.Mode == "" {
		return AllowAny, nil
	}
	return m.OutboundTrafficPolicy.Mode, nil
}

// setOutboundMode returns the mesh config with outboundTrafficPolicy.mode set, keeping the rest
// of the document (order and comments) as it is. It returns mesh unchanged when the mode already
// is in force.
func setOutboundMode(mesh, mode string) (string, error) {
	if cur, err := outboundMode(mesh); err != nil {
		return "", err
	} else if cur == mode {
		return mesh, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(mesh), &doc); err != nil {
		return "", fmt.Errorf("mesh config: %w", err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return "", fmt.Errorf("mesh config is not a mapping")
	}
	otp := mapValue(root, "outboundTrafficPolicy")
	if otp.Kind != yaml.MappingNode {
		otp.Kind, otp.Tag, otp.Value, otp.Content = yaml.MappingNode, "!!map", "", nil
	}
	otp.Style &^= yaml.FlowStyle
	m := mapValue(otp, "mode")
	m.Kind, m.Tag, m.Value, m.Style = yaml.ScalarNode, "!!str", mode, 0
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// mapValue returns the value node of key in a mapping node, adding the key when missing.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, k, v)
	return v
}
