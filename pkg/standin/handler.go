package standin

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

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
// trailing dot ignored), the behaviour by the protocol of the port the request arrived on (see
// RequestPort) and the scheme by r.TLS: HTTPS when r.TLS != nil, HTTP otherwise. Nothing else of
// the connection is read, so a caller in process can serve a synthetic request through an
// httptest.ResponseRecorder and set r.TLS = &tls.ConnectionState{ServerName: host} to mean HTTPS;
// such a caller uses Answer, which does not wait.
//
// A Host that is not listed gets 421 Misdirected Request with a plain-text body naming it, and so
// does a listed host on a port it does not declare (the server listens on the ports of every
// host). The hosts must be valid (LoadHosts or ValidateHosts); NewHandler panics otherwise. An
// empty list is a stand-in that knows no host.
func NewHandler(hosts []Host) *Handler {
	if err := ValidateHosts(hosts); err != nil {
		panic("standin.NewHandler: " + err.Error())
	}
	h := &Handler{byName: map[string]Host{}}
	for _, host := range hosts {
		n := normalizeName(host.Name)
		h.byName[n] = host
		h.names = append(h.names, n)
	}
	h.bin = httpbin.New(
		httpbin.WithHostname("egressconf-standin"),
	)
	h.httpbin = h.bin.Handler()
	return h
}

// NewHTTPBinHandler serves the httpbin API for any Host, as the in-mesh httpbin fixture does
// (cmd/standin --httpbin-addr): the same go-httpbin the external hosts' httpbin behaviour serves,
// reporting the scheme it received itself (forwarding-scheme headers moved aside, as there).
func NewHTTPBinHandler() http.Handler {
	h := httpbin.New(httpbin.WithHostname("egressconf-standin")).Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpbinOrgShape(w, r, func(w http.ResponseWriter) { h.ServeHTTP(w, ownScheme(r)) })
	})
}

// Handler answers for the stand-in's hosts (NewHandler).
type Handler struct {
	byName  map[string]Host
	names   []string
	bin     *httpbin.HTTPBin
	httpbin http.Handler
}

// Answer is what the stand-in does besides the response it writes, for a caller in process.
type Answer struct {
	// Delay is how long the server waits before it sends the response: the behaviour's `delay`,
	// or the N of httpbin's /delay/N. Answer does not wait it; ServeHTTP does.
	Delay time.Duration
	// Proto is the HTTP version a client offering h2 and http/1.1 (curl) gets from the host:
	// "2" or "1.1" over TLS, as the host's ALPN allows; "1.1" over plain HTTP.
	Proto string
	// WrongProtocol: the host's port serves the other protocol (TLS sent to a plain-HTTP port, or
	// plain HTTP to an HTTPS port). The server never sees such a request as HTTP (its listener
	// speaks the port's protocol); in process the response written is a 400 naming the mismatch,
	// which is not what a client would see.
	WrongProtocol bool
}

// ServeHTTP answers r as the server does: after the behaviour's delay (returning early, with
// nothing written, when the request's context ends first).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, true)
}

// Answer writes what the host answers r to w, as ServeHTTP does, but without waiting: the delay
// the server would wait comes back in the Answer. For the offline backend and the control-plane
// probe, which compute what an external host answers.
func (h *Handler) Answer(w http.ResponseWriter, r *http.Request) Answer {
	return h.serve(w, r, false)
}

// RequestPort is the port a request arrived on: the declared port of the server's listener, else
// the port of the context's http.LocalAddrContextKey (a caller in process sets it), else 443 for
// HTTPS and 80 for HTTP.
func RequestPort(r *http.Request) int {
	if p, ok := r.Context().Value(declaredPortKey{}).(int); ok {
		return p
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok && a.Port > 0 {
		return a.Port
	}
	if RequestScheme(r) == ProtocolHTTPS {
		return 443
	}
	return 80
}

// declaredPortKey carries the host port a server listener stands for (its actual address may
// differ, e.g. a test's random port).
type declaredPortKey struct{}

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

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, wait bool) Answer {
	name := RequestHost(r)
	scheme := RequestScheme(r)
	a := Answer{Proto: "1.1"}
	host, ok := h.byName[name]
	if scheme == ProtocolHTTPS && (!ok || host.NegotiatedALPN() == ALPNHTTP2) {
		a.Proto = "2"
	}
	if !ok {
		misdirected(w, r, fmt.Sprintf("egressconf stand-in: no host %q here (421 Misdirected Request); this server answers for: %s\n",
			name, strings.Join(h.names, ", ")))
		return a
	}
	port := RequestPort(r)
	proto, served := host.Serves(port)
	if !served {
		misdirected(w, r, fmt.Sprintf("egressconf stand-in: host %q does not answer on port %d (421 Misdirected Request); its ports: %s\n",
			name, port, portsString(host.PortList())))
		return a
	}
	if proto != scheme {
		a.WrongProtocol = true
		body := fmt.Sprintf("egressconf stand-in: port %d of %q is %s, the request came over %s\n", port, name, proto, scheme)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(body))
		return a
	}
	b := host.For(scheme)
	w.Header().Set(HeaderStandin, name)
	if b.HTTPBin {
		if d, ok := httpbinDelay(r); ok && !wait {
			// httpbin's /delay sleeps before it answers: in process its answer comes at once.
			a.Delay = d
			r2 := ownScheme(r).Clone(r.Context())
			r2.SetPathValue("duration", "0")
			httpbinOrgShape(w, r, func(w http.ResponseWriter) { h.bin.Delay(&serverTiming{ResponseWriter: w, delay: d}, r2) })
			return a
		}
		httpbinOrgShape(w, r, func(w http.ResponseWriter) { h.httpbin.ServeHTTP(w, ownScheme(r)) })
		return a
	}
	a.Delay = b.Delay
	if wait && b.Delay > 0 {
		t := time.NewTimer(b.Delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return a
		case <-t.C:
		}
	}
	for k, v := range b.Headers {
		w.Header().Set(k, v)
	}
	status := b.Status
	if b.Redirect != nil {
		status = b.Redirect.Status
		w.Header().Set("Location", b.Redirect.Location(r.URL.RequestURI()))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b.Body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead && b.Body != "" {
		_, _ = w.Write([]byte(b.Body))
	}
	return a
}

func misdirected(w http.ResponseWriter, r *http.Request, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusMisdirectedRequest)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// httpbinDelay is the delay of a valid httpbin /delay/N request (N seconds, fractional, or a Go
// duration, at most httpbin.DefaultMaxDuration), as go-httpbin reads it.
func httpbinDelay(r *http.Request) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/delay/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return 0, false
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		n, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return 0, false
		}
		d = time.Duration(n*1000) * time.Millisecond
	}
	if d < 0 || d > httpbin.DefaultMaxDuration {
		return 0, false
	}
	return d, true
}

// serverTiming reports the delay httpbin's /delay would have reported (it was called with 0).
type serverTiming struct {
	http.ResponseWriter
	delay time.Duration
}

func (s *serverTiming) WriteHeader(code int) {
	s.Header().Set("Server-Timing", fmt.Sprintf("initial_delay;dur=%0.2f;desc=\"initial delay\"", s.delay.Seconds()*1e3))
	s.ResponseWriter.WriteHeader(code)
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
