package asm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Parse reads one ASMEgressTrafficPolicy (YAML or JSON) in version v1 or v1beta1 and returns it as
// v1. Parsing is strict: an unknown or duplicated field, or a value of the wrong type, is an error
// that names the field path (e.g. `unknown field "spec.egressRules[0].to[0].hostz"`). Parse does not
// check the rules of the documents; call Validate for that.
func Parse(data []byte) (*Policy, error) {
	doc, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	if err := checkDuplicateKeys(doc); err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("asm: parse: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, errors.New("asm: parse: empty document")
	}

	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("asm: parse: %w", err)
	}
	if tm.Kind != Kind {
		if tm.Kind == "" {
			return nil, fmt.Errorf("asm: parse: kind: Required value: must be %s", Kind)
		}
		return nil, fmt.Errorf("asm: parse: kind: Unsupported value: %q: must be %s", tm.Kind, Kind)
	}

	switch tm.APIVersion {
	case SchemeGroupVersion.String():
		p := &Policy{}
		if err := strictUnmarshal(js, p); err != nil {
			return nil, err
		}
		return p, nil
	case SchemeGroupVersionV1beta1.String():
		p := &PolicyV1beta1{}
		if err := strictUnmarshal(js, p); err != nil {
			return nil, err
		}
		return p.ToV1(), nil
	case "":
		return nil, fmt.Errorf("asm: parse: apiVersion: Required value: must be %s or %s",
			SchemeGroupVersion, SchemeGroupVersionV1beta1)
	default:
		return nil, fmt.Errorf("asm: parse: apiVersion: Unsupported value: %q: supported values: %q, %q",
			tm.APIVersion, SchemeGroupVersion.String(), SchemeGroupVersionV1beta1.String())
	}
}

// strictUnmarshal decodes js into v, failing on unknown and duplicated fields; every message names
// the field path.
func strictUnmarshal(js []byte, v any) error {
	strictErrs, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return fmt.Errorf("asm: parse: %w", err)
	}
	if len(strictErrs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(strictErrs))
	for _, e := range strictErrs {
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("asm: parse: strict decoding error: %s", strings.Join(msgs, ", "))
}

// checkDuplicateKeys refuses a YAML mapping that repeats a key, naming the field path and line
// (YAML-to-JSON conversion would otherwise keep the last value silently).
func checkDuplicateKeys(doc []byte) error {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &root); err != nil {
		return fmt.Errorf("asm: parse: %w", err)
	}
	var dups []string
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		switch n.Kind {
		case yamlv3.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yamlv3.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yamlv3.MappingNode:
			seen := map[string]bool{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if seen[k.Value] {
					dups = append(dups, fmt.Sprintf("duplicate field %q (line %d)", p, k.Line))
				}
				seen[k.Value] = true
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(&root, "")
	if len(dups) > 0 {
		return fmt.Errorf("asm: parse: strict decoding error: %s", strings.Join(dups, ", "))
	}
	return nil
}

// singleDocument returns the only non-empty YAML document of data.
func singleDocument(data []byte) ([]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var found []byte
	n := 0
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("asm: parse: %w", err)
		}
		if isBlankYAML(doc) {
			continue
		}
		n++
		found = doc
	}
	switch n {
	case 0:
		return nil, errors.New("asm: parse: empty document")
	case 1:
		return found, nil
	default:
		return nil, fmt.Errorf("asm: parse: want one ASMEgressTrafficPolicy, found %d YAML documents", n)
	}
}

// isBlankYAML reports whether a document holds only comments, blank lines and separators.
func isBlankYAML(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t == "---" || strings.HasPrefix(t, "#") {
			continue
		}
		return false
	}
	return true
}

// Marshal renders a policy as YAML (json field names, sorted keys), with apiVersion and kind set to
// v1 when they are empty.
func Marshal(p *Policy) ([]byte, error) {
	q := p.DeepCopy()
	if q.APIVersion == "" {
		q.APIVersion = SchemeGroupVersion.String()
	}
	if q.Kind == "" {
		q.Kind = Kind
	}
	return yaml.Marshal(q)
}

// ToUnstructured returns the policy as an unstructured object (for applying it as is to a cluster
// where ASM serves the CRD). Empty apiVersion and kind become v1 and ASMEgressTrafficPolicy.
func ToUnstructured(p *Policy) (*unstructured.Unstructured, error) {
	q := p.DeepCopy()
	if q.APIVersion == "" {
		q.APIVersion = SchemeGroupVersion.String()
	}
	if q.Kind == "" {
		q.Kind = Kind
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(q)
	if err != nil {
		return nil, err
	}
	// An empty status says nothing; ASM's controller owns it.
	if st, ok := obj["status"].(map[string]any); ok && len(st) == 0 {
		delete(obj, "status")
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		if ts, ok := md["creationTimestamp"]; ok && ts == nil {
			delete(md, "creationTimestamp")
		}
	}
	return &unstructured.Unstructured{Object: obj}, nil
}
