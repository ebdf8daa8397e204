package standin

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// HeaderStandin is set on every response the stand-in gives for a known host, with the host
// name as value, so a test can tell the stand-in answered (and not an Envoy local reply).
const HeaderStandin = "X-Egressconf-Standin"

// ReceivedHeaderPrefix is prepended to the forwarding-scheme headers a client sent
// (X-Forwarded-Proto, X-Forwarded-Protocol, X-Forwarded-Ssl) before the request reaches httpbin.
// go-httpbin trusts those headers over the connection when it builds the `url` it reports; the
// stand-in must report the scheme it received itself, so it moves them aside (still visible in
// /headers and /anything as X-Egressconf-Received-X-Forwarded-Proto etc.).
const ReceivedHeaderPrefix = "X-Egressconf-Received-"

var forwardedSchemeHeaders = []string{"X-Forwarded-Proto", "X-Forwarded-Protocol", "X-Forwarded-Ssl"}

// NewHandler serves hosts, choosing the host by the Host header (port stripped, case-insensitive,
// trailing dot ignored) and the scheme by r.TLS: HTTPS when r.TLS != nil, HTTP otherwise. Nothing
// else of the connection is read, so a caller in process can serve a synthetic request through an
// httptest.ResponseRecorder and set r.TLS = &tls.ConnectionState{ServerName: host} to mean HTTPS.
// A Host that is not listed gets 421 Misdirected Request with a plain-text body naming it.
//
// The hosts must be valid (LoadHosts, DefaultHosts or ValidateHosts); NewHandler panics otherwise.
func NewHandler(hosts []Host) http.Handler {
	if err := ValidateHosts(hosts); err != nil {
		panic("standin.NewHandler: " + err.Error())
	}
	h := &handler{byName: map[string]Host{}}
	for _, host := range hosts {
		n := normalizeName(host.Name)
		h.byName[n] = host
		h.names = append(h.names, n)
	}
	h.httpbin = newHTTPBin()
	return h
}

func newHTTPBin() http.Handler {
	return httpbin.New(httpbin.WithHostname("egressconf-standin")).Handler()
}

// NewHTTPBinHandler serves the httpbin API for any Host, as the in-mesh httpbin fixture does
// (cmd/standin --httpbin-addr): the same go-httpbin the external hosts' httpbin behaviour serves,
// reporting the scheme it received itself (forwarding-scheme headers moved aside, as there).
func NewHTTPBinHandler() http.Handler {
	h := newHTTPBin()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, ownScheme(r)) })
}

type handler struct {
	byName  map[string]Host
	names   []string
	httpbin http.Handler
}

// RequestHost is the host name the handler dispatches on: r.Host (r.URL.Host when empty), port
// stripped, lower case, no trailing dot.
func RequestHost(r *http.Request) string {
	h := r.Host
	if h == "" && r.URL != nil {
		h = r.URL.Host
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return normalizeName(h)
}

// RequestScheme is "https" when r.TLS != nil, else "http".
func RequestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := RequestHost(r)
	host, ok := h.byName[name]
	if !ok {
		body := fmt.Sprintf("egressconf stand-in: no host %q here (421 Misdirected Request); this server answers for: %s\n",
			name, strings.Join(h.names, ", "))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusMisdirectedRequest)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
		return
	}
	scheme := RequestScheme(r)
	b := host.For(scheme)
	w.Header().Set(HeaderStandin, name)
	if b.HTTPBin {
		h.httpbin.ServeHTTP(w, ownScheme(r))
		return
	}
	for k, v := range b.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b.Body)))
	w.WriteHeader(b.Status)
	if r.Method != http.MethodHead && b.Body != "" {
		_, _ = w.Write([]byte(b.Body))
	}
}

// ownScheme returns r, or a clone of it whose forwarding-scheme headers are renamed with
// ReceivedHeaderPrefix, so go-httpbin derives the scheme from r.TLS alone.
func ownScheme(r *http.Request) *http.Request {
	// Keys are compared case-insensitively: a synthetic request may carry non-canonical keys.
	isForwarded := func(k string) (string, bool) {
		for _, f := range forwardedSchemeHeaders {
			if strings.EqualFold(k, f) {
				return f, true
			}
		}
		return "", false
	}
	found := false
	for k := range r.Header {
		if _, ok := isForwarded(k); ok {
			found = true
		}
	}
	if !found {
		return r
	}
	r2 := r.Clone(r.Context())
	for k, v := range r2.Header {
		if canon, ok := isForwarded(k); ok {
			delete(r2.Header, k)
			r2.Header[ReceivedHeaderPrefix+canon] = append(r2.Header[ReceivedHeaderPrefix+canon], v...)
		}
	}
	return r2
}
