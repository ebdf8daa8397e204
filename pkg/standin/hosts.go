// Package standin is the stand-in internet: one server that answers for every external host of
// the catalog (by Host header and TLS SNI, on every port a host declares), so no run depends on
// the real sites.
//
// The hosts and their behaviour are catalog data: the catalog's hosts.yaml and its scenarios'
// spec.hosts (pkg/catalog), in the schema of this package (Host; LoadHosts reads a file;
// docs/catalog.md, "External hosts"). The package has no host list of its own.
//
// NewHandler serves them. Server listens on every declared port (plain HTTP or TLS; the leaf is
// chosen by SNI, HTTP/2 by ALPN as the host allows) and its handler waits a behaviour's delay
// before answering. In process, the offline backend and the control-plane probe compute what a
// host answers without waiting: Handler.Answer writes the response and returns an Answer holding
// the delay the server would have waited (a behaviour's `delay`, httpbin's /delay/N), the HTTP
// version the host's TLS negotiates, and whether the port serves the request's protocol at all.
// The port a request arrived on is the declared port the server listens on, or, in process, the
// port of the request's context value http.LocalAddrContextKey (a *net.TCPAddr); without either,
// 80 for HTTP and 443 for HTTPS. manifests.go has the Kubernetes objects that run the server in a
// cluster, outside the mesh.
package standin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Protocols a host port serves.
const (
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
)

// ALPN protocol IDs a host's TLS may offer.
const (
	ALPNHTTP2  = "h2"
	ALPNHTTP11 = "http/1.1"
)

// DefaultPorts are a host's ports when it lists none: 80 plain HTTP and 443 HTTPS.
var DefaultPorts = []Port{{Port: 80, Protocol: ProtocolHTTP}, {Port: 443, Protocol: ProtocolHTTPS}}

// DefaultALPN is what a host's TLS offers, in order of preference, when its behaviour names none.
var DefaultALPN = []string{ALPNHTTP2, ALPNHTTP11}

// MaxDelay bounds a behaviour's delay: no probe waits longer (probe.MaxMaxTime).
const MaxDelay = 300 * time.Second

// Host is one external host name, the ports it answers on and how it answers on each protocol.
type Host struct {
	// Name is the DNS name, lower case, no port, no trailing dot.
	Name string `yaml:"name" json:"name"`
	// Ports the host answers on; DefaultPorts (80 http, 443 https) when empty.
	Ports []Port `yaml:"ports,omitempty" json:"ports,omitempty"`
	// HTTP is the behaviour on every plain-HTTP port.
	HTTP *Behaviour `yaml:"http,omitempty" json:"http,omitempty"`
	// HTTPS is the behaviour on every HTTPS port.
	HTTPS *Behaviour `yaml:"https,omitempty" json:"https,omitempty"`
}

// Port is one port of a host and its protocol (ProtocolHTTP or ProtocolHTTPS).
type Port struct {
	Port     int    `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`
}

// Behaviour is how a host answers on one protocol: a fixed response (Status, Headers, Body), a
// redirect (Redirect, optionally Headers and Body), or the httpbin API (HTTPBin; nothing else
// then). Delay holds back a fixed response or a redirect; ALPN restricts what TLS negotiates.
type Behaviour struct {
	Status   int               `yaml:"status,omitempty" json:"status,omitempty"`
	Headers  map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Body     string            `yaml:"body,omitempty" json:"body,omitempty"`
	HTTPBin  bool              `yaml:"httpbin,omitempty" json:"httpbin,omitempty"`
	Redirect *Redirect         `yaml:"redirect,omitempty" json:"redirect,omitempty"`
	// Delay is how long the server waits before it sends the response (see Answer).
	Delay time.Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	// ALPN lists the protocols the host's TLS offers, in order of preference (h2, http/1.1);
	// DefaultALPN when empty. HTTPS only.
	ALPN []string `yaml:"alpn,omitempty" json:"alpn,omitempty"`
}

// Redirect answers with Status and Location: To followed by the request's path and query.
type Redirect struct {
	Status int    `yaml:"status" json:"status"`
	To     string `yaml:"to" json:"to"`
}

// Location is where the redirect sends a request for requestURI (path and query, as in
// http.Request.RequestURI): To without a trailing slash, then requestURI.
func (r *Redirect) Location(requestURI string) string {
	if requestURI == "" || requestURI == "*" {
		requestURI = "/"
	}
	return strings.TrimSuffix(r.To, "/") + requestURI
}

// For returns the behaviour for scheme "http" or "https" (nil for anything else).
func (h Host) For(scheme string) *Behaviour {
	switch scheme {
	case ProtocolHTTP:
		return h.HTTP
	case ProtocolHTTPS:
		return h.HTTPS
	}
	return nil
}

// PortList is the host's ports: Ports, or DefaultPorts when it lists none.
func (h Host) PortList() []Port {
	if len(h.Ports) == 0 {
		return append([]Port(nil), DefaultPorts...)
	}
	return append([]Port(nil), h.Ports...)
}

// Serves returns the protocol of the host's port, or ok=false when it does not answer there.
func (h Host) Serves(port int) (protocol string, ok bool) {
	for _, p := range h.PortList() {
		if p.Port == port {
			return p.Protocol, true
		}
	}
	return "", false
}

// NegotiatedALPN is the protocol the host's TLS agrees with a client offering h2 and http/1.1
// (curl's offer): the first of the host's ALPN list.
func (h Host) NegotiatedALPN() string {
	if h.HTTPS != nil && len(h.HTTPS.ALPN) > 0 {
		return h.HTTPS.ALPN[0]
	}
	return DefaultALPN[0]
}

// ServerPorts is every port of the hosts with its protocol, by port number: the ports a stand-in
// serving them listens on. ValidateHosts ensures a port has one protocol across the hosts.
func ServerPorts(hosts []Host) []Port {
	seen := map[int]bool{}
	var out []Port
	for _, h := range hosts {
		for _, p := range h.PortList() {
			if !seen[p.Port] {
				seen[p.Port] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

type hostsFile struct {
	Hosts []Host `yaml:"hosts"`
}

// HostsFile is the top level of a hosts file and of a scenario's spec.hosts list's parent: the
// `hosts:` key. Other packages decode into it to share the schema.
type HostsFile = hostsFile

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
	if len(f.Hosts) == 0 {
		return nil, errors.New("hosts: no hosts: want at least one entry under `hosts:`")
	}
	if err := ValidateHosts(f.Hosts); err != nil {
		return nil, err
	}
	Normalize(f.Hosts)
	return f.Hosts, nil
}

// Normalize sets every host's name to its canonical form (lower case, no trailing dot).
func Normalize(hosts []Host) {
	for i := range hosts {
		hosts[i].Name = normalizeName(hosts[i].Name)
	}
}

// HostNames lists the hosts' names in the given order.
func HostNames(hosts []Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = normalizeName(h.Name)
	}
	return out
}

// ValidateHosts checks hosts as LoadHosts does (for hosts built in code); errors name the field
// as `hosts[i] (name).field`. An empty list is valid: a stand-in that knows no host.
func ValidateHosts(hosts []Host) error {
	return ValidateHostsAt("hosts", hosts)
}

// ValidateHostsAt checks hosts as ValidateHosts does, naming fields below list (e.g.
// "spec.hosts"). Besides each host's own fields it checks that a name is listed once and that a
// port number has one protocol across the hosts (one server listens on it for all of them).
func ValidateHostsAt(list string, hosts []Host) error {
	seen := map[string]int{}
	portProto := map[int]string{}
	portOwner := map[int]string{}
	var errs []error
	for i, h := range hosts {
		where := fmt.Sprintf("%s[%d]", list, i)
		if h.Name != "" {
			where += " (" + h.Name + ")"
		}
		name := normalizeName(h.Name)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", where))
		} else if err := checkDNSName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %v", where, err))
		} else if j, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already listed at %s[%d]", where, name, list, j))
		} else {
			seen[name] = i
		}
		errs = append(errs, validateHost(where, h)...)
		for pi, p := range h.PortList() {
			if proto, ok := portProto[p.Port]; ok && proto != p.Protocol && p.Protocol != "" {
				field := fmt.Sprintf("%s.ports[%d]", where, pi)
				if len(h.Ports) == 0 {
					field = where + ".ports (default: 80 http, 443 https)"
				}
				errs = append(errs, fmt.Errorf("%s: port %d is %s here but %s for %s: the stand-in has one listener per port", field, p.Port, p.Protocol, proto, portOwner[p.Port]))
			}
		}
		for _, p := range h.PortList() {
			if _, ok := portProto[p.Port]; !ok && (p.Protocol == ProtocolHTTP || p.Protocol == ProtocolHTTPS) {
				portProto[p.Port], portOwner[p.Port] = p.Protocol, name
			}
		}
	}
	return errors.Join(errs...)
}

func validateHost(where string, h Host) []error {
	var errs []error
	need := map[string]bool{}
	seenPort := map[int]int{}
	for i, p := range h.Ports {
		pf := fmt.Sprintf("%s.ports[%d]", where, i)
		switch {
		case p.Port < 1 || p.Port > 65535:
			errs = append(errs, fmt.Errorf("%s.port: %d is not a port number (1-65535)", pf, p.Port))
		case p.Port == 53:
			errs = append(errs, fmt.Errorf("%s.port: 53 is the stand-in's DNS port", pf))
		default:
			if j, dup := seenPort[p.Port]; dup {
				errs = append(errs, fmt.Errorf("%s.port: %d already listed at ports[%d]", pf, p.Port, j))
			}
			seenPort[p.Port] = i
		}
		switch p.Protocol {
		case ProtocolHTTP, ProtocolHTTPS:
			need[p.Protocol] = true
		case "":
			errs = append(errs, fmt.Errorf("%s.protocol: required (http or https)", pf))
		default:
			errs = append(errs, fmt.Errorf("%s.protocol: %q, want http or https", pf, p.Protocol))
		}
	}
	if len(h.Ports) == 0 {
		need[ProtocolHTTP], need[ProtocolHTTPS] = true, true
	}
	for _, s := range []struct {
		proto string
		b     *Behaviour
	}{{ProtocolHTTP, h.HTTP}, {ProtocolHTTPS, h.HTTPS}} {
		bw := where + "." + s.proto
		switch {
		case s.b == nil && need[s.proto] && len(h.Ports) == 0:
			errs = append(errs, fmt.Errorf("%s: required (a fixed response with `status`, a `redirect`, or `httpbin: true`); without `ports:` a host answers on 80 (http) and 443 (https)", bw))
		case s.b == nil && need[s.proto]:
			errs = append(errs, fmt.Errorf("%s: required: a port has protocol %s (a fixed response with `status`, a `redirect`, or `httpbin: true`)", bw, s.proto))
		case s.b != nil && !need[s.proto]:
			errs = append(errs, fmt.Errorf("%s: no port has protocol %s (ports: %s), so this behaviour would never answer", bw, s.proto, portsString(h.Ports)))
		case s.b != nil:
			errs = append(errs, validateBehaviour(bw, s.proto, s.b)...)
		}
	}
	return errs
}

func portsString(ps []Port) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	return strings.Join(out, ", ")
}

func validateBehaviour(where, proto string, b *Behaviour) []error {
	var errs []error
	if len(b.ALPN) > 0 {
		if proto != ProtocolHTTPS {
			errs = append(errs, fmt.Errorf("%s.alpn: only for https (plain HTTP negotiates nothing)", where))
		}
		seen := map[string]bool{}
		for i, a := range b.ALPN {
			switch {
			case a != ALPNHTTP2 && a != ALPNHTTP11:
				errs = append(errs, fmt.Errorf("%s.alpn[%d]: %q, want h2 or http/1.1", where, i, a))
			case seen[a]:
				errs = append(errs, fmt.Errorf("%s.alpn[%d]: %q listed twice", where, i, a))
			}
			seen[a] = true
		}
	}
	if b.Delay < 0 || b.Delay > MaxDelay {
		errs = append(errs, fmt.Errorf("%s.delay: %s, want 0 to %s", where, b.Delay, MaxDelay))
	}
	if b.HTTPBin {
		for _, f := range []struct {
			name string
			set  bool
		}{{"status", b.Status != 0}, {"headers", len(b.Headers) > 0}, {"body", b.Body != ""},
			{"redirect", b.Redirect != nil}, {"delay", b.Delay != 0}} {
			if f.set {
				msg := "not allowed with httpbin: true"
				if f.name == "delay" {
					msg += " (httpbin has /delay/N)"
				}
				errs = append(errs, fmt.Errorf("%s.%s: %s", where, f.name, msg))
			}
		}
		return errs
	}
	status := b.Status
	if r := b.Redirect; r != nil {
		if b.Status != 0 {
			errs = append(errs, fmt.Errorf("%s.status: not allowed with redirect (give redirect.status)", where))
		}
		status = r.Status
		switch r.Status {
		case 301, 302, 303, 307, 308:
		case 0:
			errs = append(errs, fmt.Errorf("%s.redirect.status: required (301, 302, 303, 307 or 308)", where))
		default:
			errs = append(errs, fmt.Errorf("%s.redirect.status: %d, want 301, 302, 303, 307 or 308", where, r.Status))
		}
		if u, err := url.Parse(r.To); r.To == "" {
			errs = append(errs, fmt.Errorf("%s.redirect.to: required (an absolute URL, e.g. https://www.example.com)", where))
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.redirect.to: %q is not an absolute http(s) URL", where, r.To))
		} else if strings.ContainsAny(r.To, "?#") {
			errs = append(errs, fmt.Errorf("%s.redirect.to: %q has a query or fragment: the request's path and query are appended to it", where, r.To))
		} else if !httpguts.ValidHeaderFieldValue(r.To) {
			errs = append(errs, fmt.Errorf("%s.redirect.to: %q is not a valid header value", where, r.To))
		}
		if _, ok := headerValue(b.Headers, "location"); ok {
			errs = append(errs, fmt.Errorf("%s.headers: location is set by the redirect, do not give it", where))
		}
	} else {
		switch {
		case b.Status == 0:
			errs = append(errs, fmt.Errorf("%s.status: required (or set redirect, or httpbin: true)", where))
		case b.Status < 200 || b.Status > 599:
			errs = append(errs, fmt.Errorf("%s.status: %d is not a final HTTP status (200-599)", where, b.Status))
		}
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
	if b.Redirect == nil && b.Status >= 300 && b.Status < 400 && b.Status != 304 {
		if _, ok := headerValue(b.Headers, "location"); !ok {
			errs = append(errs, fmt.Errorf("%s.headers: status %d needs a location header (or use redirect)", where, b.Status))
		}
	}
	if (status == http.StatusNoContent || status == http.StatusNotModified) && b.Body != "" {
		errs = append(errs, fmt.Errorf("%s.body: status %d has no body", where, status))
	}
	return errs
}

// Equal reports whether two hosts declare the same thing (names compared in canonical form).
func (h Host) Equal(o Host) bool {
	a, errA := MarshalHosts([]Host{withName(h)})
	b, errB := MarshalHosts([]Host{withName(o)})
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

func withName(h Host) Host {
	h.Name = normalizeName(h.Name)
	return h
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
