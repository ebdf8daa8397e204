package asm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

const (
	// LabelGeneratedFrom marks every generated object with the policy it came from. Its value is
	// GeneratedFromValue(p).
	LabelGeneratedFrom = "egressconf.io/generated-from"
	// LabelManagedBy is the standard managed-by label; its value is ManagedBy.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "egressconf"
	// AnnotationSource carries "<namespace>/<name>" of the policy, in full, on every generated object
	// (the label value may be shortened, see GeneratedFromValue).
	AnnotationSource = "egressconf.io/source-policy"

	generatedFromPrefix = "asm-egress-traffic-policy."
	maxLabelValue       = 63
	maxDNSLabel         = 63
	maxObjectName       = 253
)

// GeneratedFromValue is the value of LabelGeneratedFrom for a policy:
// "asm-egress-traffic-policy.<namespace>.<name>". A label value holds at most 63 characters; a
// longer one is cut and ends with "-" and 10 hex digits of the SHA-256 of "<namespace>/<name>", so
// it stays unique per policy.
func GeneratedFromValue(p *Policy) string {
	v := generatedFromPrefix + p.Namespace + "." + p.Name
	if len(v) <= maxLabelValue {
		return v
	}
	return shorten(v, maxLabelValue, p.Namespace+"/"+p.Name)
}

// GeneratedLabels are the labels on every object generated from p.
func GeneratedLabels(p *Policy) map[string]string {
	return map[string]string{
		LabelGeneratedFrom: GeneratedFromValue(p),
		LabelManagedBy:     ManagedBy,
	}
}

// GeneratedLabelSelector selects exactly the objects generated from p (in the policy's namespace,
// where all of them live): deleting the policy means deleting what this selector matches, e.g.
// `kubectl -n istio-egress delete serviceentries,gateways,destinationrules,virtualservices -l '<selector>'`.
func GeneratedLabelSelector(p *Policy) string {
	return labels.SelectorFromSet(GeneratedLabels(p)).String()
}

// destinationName is the name of a `to` entry in generated names: its name, or, when it has none,
// "<first host>-<port>" made a DNS label.
func destinationName(t *To) string {
	if t.Name != "" {
		return t.Name
	}
	first := ""
	if len(t.Hosts) > 0 {
		first = t.Hosts[0]
	}
	port := int32(0)
	if t.Port != nil {
		port = t.Port.Number
	}
	return dnsLabel(slug(first), fmt.Sprint(port))
}

// slug turns a host name into DNS-label characters: dots become dashes.
func slug(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// dnsLabel joins parts with "-" into a DNS-1123 label. A result longer than 63 characters is cut
// and given a hash suffix, so names stay unique and deterministic.
func dnsLabel(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	s := strings.Join(kept, "-")
	if len(s) <= maxDNSLabel {
		return s
	}
	return shorten(s, maxDNSLabel, s)
}

// objectName joins parts with "-" into a DNS-1123 subdomain, the rule for the names of the
// generated ServiceEntries, DestinationRules and VirtualServices (a Gateway's name and a subset's
// must be DNS labels: see dnsLabel). Too long a name is cut and given a hash suffix.
func objectName(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	s := strings.Join(kept, "-")
	if len(s) <= maxObjectName {
		return s
	}
	return shorten(s, maxObjectName, s)
}

// shorten cuts s to max characters, ending in "-" and 10 hex digits of the hash of key.
func shorten(s string, max int, key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])[:10]
	cut := s[:max-len(h)-1]
	cut = strings.TrimRight(cut, "-.")
	return cut + "-" + h
}
