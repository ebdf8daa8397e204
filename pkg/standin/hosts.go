// Package standin is the stand-in internet: one server that answers for every external host of
// the catalog (by Host header and TLS SNI), so no run depends on the real sites.
//
// The hosts and their behaviour are data (hosts.yaml, embedded; LoadHosts for another file).
// NewHandler serves them; it is also called in process, with a synthetic request, by the
// offline backend to compute what an external host answers. Server listens on HTTP and HTTPS
// (leaf per host chosen by SNI, HTTP/2 by ALPN). manifests.go has the Kubernetes objects that
// run it in a cluster, outside the mesh.
package standin

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

//go:embed hosts.yaml
var defaultHostsYAML []byte

// DefaultHostsYAML returns the embedded hosts.yaml (for writing it out or deriving a variant).
func DefaultHostsYAML() []byte { return bytes.Clone(defaultHostsYAML) }

// Host is one external host name and how it answers on each scheme.
type Host struct {
	// Name is the DNS name, lower case, no port, no trailing dot.
	Name string `yaml:"name" json:"name"`
	// HTTP is the behaviour on plain HTTP (port 80).
	HTTP *Behaviour `yaml:"http" json:"http"`
	// HTTPS is the behaviour over TLS (port 443).
	HTTPS *Behaviour `yaml:"https" json:"https"`
}

// Behaviour is a fixed response, or the httpbin API when HTTPBin is true (then Status, Headers
// and Body must be empty).
type Behaviour struct {
	Status  int               `yaml:"status,omitempty" json:"status,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty" json:"body,omitempty"`
	HTTPBin bool              `yaml:"httpbin,omitempty" json:"httpbin,omitempty"`
}

// For returns the behaviour for scheme "http" or "https" (nil for anything else).
func (h Host) For(scheme string) *Behaviour {
	switch scheme {
	case "http":
		return h.HTTP
	case "https":
		return h.HTTPS
	}
	return nil
}

type hostsFile struct {
	Hosts []Host `yaml:"hosts"`
}

// LoadHosts parses and validates a hosts file. Unknown fields are errors; every validation error
// names the offending field, e.g. `hosts[0] (www.aliyun.com).http.status: ...`.
func LoadHosts(data []byte) ([]Host, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f hostsFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("hosts: empty file: want a top-level `hosts:` list")
		}
		return nil, fmt.Errorf("hosts: %w", err)
	}
	if err := ValidateHosts(f.Hosts); err != nil {
		return nil, err
	}
	for i := range f.Hosts {
		f.Hosts[i].Name = normalizeName(f.Hosts[i].Name)
	}
	return f.Hosts, nil
}

// DefaultHosts returns the embedded hosts (a fresh copy each call).
func DefaultHosts() []Host {
	hosts, err := LoadHosts(defaultHostsYAML)
	if err != nil {
		panic("standin: embedded hosts.yaml is invalid: " + err.Error())
	}
	return hosts
}

// HostNames lists the hosts' names in the given order.
func HostNames(hosts []Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = normalizeName(h.Name)
	}
	return out
}

// ValidateHosts checks hosts as LoadHosts does (for hosts built in code).
func ValidateHosts(hosts []Host) error {
	if len(hosts) == 0 {
		return errors.New("hosts: no hosts: want at least one entry under `hosts:`")
	}
	seen := map[string]int{}
	var errs []error
	for i, h := range hosts {
		where := fmt.Sprintf("hosts[%d]", i)
		if h.Name != "" {
			where += " (" + h.Name + ")"
		}
		name := normalizeName(h.Name)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", where))
		} else if err := checkDNSName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %v", where, err))
		} else if j, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already listed at hosts[%d]", where, name, j))
		} else {
			seen[name] = i
		}
		for _, s := range []struct {
			field string
			b     *Behaviour
		}{{"http", h.HTTP}, {"https", h.HTTPS}} {
			errs = append(errs, validateBehaviour(where+"."+s.field, s.b)...)
		}
	}
	return errors.Join(errs...)
}

func validateBehaviour(where string, b *Behaviour) []error {
	if b == nil {
		return []error{fmt.Errorf("%s: required (a fixed response with `status`, or `httpbin: true`)", where)}
	}
	var errs []error
	if b.HTTPBin {
		if b.Status != 0 {
			errs = append(errs, fmt.Errorf("%s.status: not allowed with httpbin: true", where))
		}
		if len(b.Headers) > 0 {
			errs = append(errs, fmt.Errorf("%s.headers: not allowed with httpbin: true", where))
		}
		if b.Body != "" {
			errs = append(errs, fmt.Errorf("%s.body: not allowed with httpbin: true", where))
		}
		return errs
	}
	switch {
	case b.Status == 0:
		errs = append(errs, fmt.Errorf("%s.status: required (or set httpbin: true)", where))
	case b.Status < 200 || b.Status > 599:
		errs = append(errs, fmt.Errorf("%s.status: %d is not a final HTTP status (200-599)", where, b.Status))
	}
	keys := make([]string, 0, len(b.Headers))
	for k := range b.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			errs = append(errs, fmt.Errorf("%s.headers: %q is not a valid header name", where, k))
		} else if !httpguts.ValidHeaderFieldValue(b.Headers[k]) {
			errs = append(errs, fmt.Errorf("%s.headers.%s: value %q is not a valid header value", where, k, b.Headers[k]))
		} else if strings.EqualFold(k, "content-length") {
			errs = append(errs, fmt.Errorf("%s.headers.%s: set from the body, do not give it", where, k))
		}
	}
	if b.Status >= 300 && b.Status < 400 && b.Status != 304 {
		if _, ok := headerValue(b.Headers, "location"); !ok {
			errs = append(errs, fmt.Errorf("%s.headers: status %d needs a location header", where, b.Status))
		}
	}
	if (b.Status == http.StatusNoContent || b.Status == http.StatusNotModified) && b.Body != "" {
		errs = append(errs, fmt.Errorf("%s.body: status %d has no body", where, b.Status))
	}
	return errs
}

func headerValue(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func normalizeName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}

func checkDNSName(n string) error {
	if len(n) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", n)
	}
	if !strings.Contains(n, ".") {
		return fmt.Errorf("%q is not a fully qualified name (no dot)", n)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a valid DNS name (label %q)", n, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a valid DNS name (character %q)", n, c)
			}
		}
	}
	return nil
}
