package standin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/egressconf/egressconf/pkg/pki"
)

// Server serves hosts on every port they declare: plain HTTP on their http ports, TLS on their
// https ports. Over TLS the leaf certificate is chosen by SNI (pki.Bundle.GetCertificate) and the
// HTTP version by ALPN, among what the host allows (Behaviour.ALPN; h2 then http/1.1 by default).
// A behaviour's delay is waited before the response.
type Server struct {
	// Hosts served. Required.
	Hosts []Host
	// Certs has a leaf for every host with an https port. Required when one is listened on.
	Certs *pki.Bundle
	// Addrs maps a declared port to the address its listener binds (e.g. "127.0.0.1:18080");
	// ":<port>" when absent, "-" to not listen for that port.
	Addrs map[int]string
	// Log receives one line per request (see LogRequests); nil logs nothing.
	Log io.Writer
	// ErrorLog receives the servers' own errors (TLS handshake failures, ...); nil: the log
	// package's standard logger.
	ErrorLog *log.Logger
	// ShutdownTimeout bounds the graceful shutdown after the context ends; default 5s.
	ShutdownTimeout time.Duration
}

// ListenAndServe listens for every port of the hosts (ServerPorts) at its address (Addrs) and
// serves until ctx ends, then shuts down gracefully. It returns nil after a shutdown caused by
// ctx.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ls := map[int]net.Listener{}
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, p := range ServerPorts(s.Hosts) {
		addr := s.Addrs[p.Port]
		if addr == "" {
			addr = ":" + strconv.Itoa(p.Port)
		}
		if addr == "-" {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("standin: listen for port %d (%s) on %s: %w", p.Port, p.Protocol, addr, err)
		}
		ls[p.Port] = l
	}
	return s.Serve(ctx, ls)
}

func (s *Server) check() error {
	if len(s.Hosts) == 0 {
		return errors.New("standin: no hosts to serve")
	}
	return ValidateHosts(s.Hosts)
}

// Serve serves each listener as the declared port it is keyed by (its protocol is the one the
// hosts give that port) until ctx ends, then shuts down gracefully and returns nil. It closes
// the listeners.
func (s *Server) Serve(ctx context.Context, listeners map[int]net.Listener) error {
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	if len(listeners) == 0 {
		return errors.New("standin: no listener")
	}
	if err := s.check(); err != nil {
		closeAll()
		return err
	}
	protocol := map[int]string{}
	for _, p := range ServerPorts(s.Hosts) {
		protocol[p.Port] = p.Protocol
	}
	ports := make([]int, 0, len(listeners))
	tlsNeeded := false
	for port := range listeners {
		proto, ok := protocol[port]
		if !ok {
			closeAll()
			return fmt.Errorf("standin: a listener for port %d, which no host declares", port)
		}
		tlsNeeded = tlsNeeded || proto == ProtocolHTTPS
		ports = append(ports, port)
	}
	sort.Ints(ports)
	alpn := map[string][]string{}
	if tlsNeeded {
		if s.Certs == nil {
			closeAll()
			return errors.New("standin: HTTPS needs certificates (Server.Certs)")
		}
		for _, h := range s.Hosts {
			n := normalizeName(h.Name)
			if h.HTTPS == nil {
				continue
			}
			if _, ok := s.Certs.Leaf(n); !ok {
				closeAll()
				return fmt.Errorf("standin: no certificate for host %s", n)
			}
			if len(h.HTTPS.ALPN) > 0 {
				alpn[n] = h.HTTPS.ALPN
			}
		}
	}
	handler := NewHandler(s.Hosts)
	var h http.Handler = handler
	if s.Log != nil {
		h = LogRequests(h, s.Log)
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}

	type served struct {
		name string
		srv  *http.Server
		err  error
	}
	var servers []*http.Server
	done := make(chan served, len(listeners))
	for _, port := range ports {
		port, l := port, listeners[port]
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          s.ErrorLog,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
			ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, declaredPortKey{}, port)
			},
		}
		servers = append(servers, srv)
		name := fmt.Sprintf("port %d (%s)", port, protocol[port])
		if protocol[port] == ProtocolHTTP {
			go func() { done <- served{name, srv, srv.Serve(l)} }()
			continue
		}
		base := &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.Certs.GetCertificate,
			// ServeTLS adds "h2" itself; listing it keeps the preference explicit.
			NextProtos: append([]string(nil), DefaultALPN...),
		}
		// A host that restricts ALPN (alpn: [http/1.1]) gets a config offering only its list.
		base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			list, ok := alpn[normalizeName(hello.ServerName)]
			if !ok {
				return nil, nil
			}
			c := base.Clone()
			c.GetConfigForClient = nil
			c.NextProtos = list
			return c, nil
		}
		srv.TLSConfig = base
		go func() { done <- served{name, srv, srv.ServeTLS(l, "", "")} }()
	}

	var first error
	pending := len(servers)
	select {
	case <-ctx.Done():
	case r := <-done:
		pending--
		if !errors.Is(r.err, http.ErrServerClosed) {
			first = fmt.Errorf("standin: %s server: %w", r.name, r.err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil && first == nil {
			first = fmt.Errorf("standin: shutdown: %w", err)
		}
	}
	for ; pending > 0; pending-- {
		r := <-done
		if !errors.Is(r.err, http.ErrServerClosed) && first == nil {
			first = fmt.Errorf("standin: %s server: %w", r.name, r.err)
		}
	}
	return first
}

// LogRequests wraps h to write one line per request to out:
//
//	2026-01-02T15:04:05.000Z host=www.aliyun.com scheme=http proto=HTTP/1.1 method=HEAD path=/ status=301 bytes=0 dur=0.2ms sni= remote=10.244.0.7:51234 port=80
func LogRequests(h http.Handler, out io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			sni := ""
			if r.TLS != nil {
				sni = r.TLS.ServerName
			}
			path := r.URL.RequestURI()
			line := fmt.Sprintf("%s host=%s scheme=%s proto=%s method=%s path=%s status=%d bytes=%d dur=%.1fms sni=%s remote=%s port=%d\n",
				start.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				logValue(r.Host), RequestScheme(r), logValue(r.Proto), logValue(r.Method), logValue(path),
				status, rec.bytes, float64(time.Since(start).Microseconds())/1000, logValue(sni), logValue(r.RemoteAddr), RequestPort(r))
			mu.Lock()
			_, _ = io.WriteString(out, line)
			mu.Unlock()
		}()
		h.ServeHTTP(rec, r)
	})
}

// logValue keeps a value on one line and unambiguous: quoted when it has spaces, quotes or
// control characters.
func logValue(s string) string {
	for _, c := range s {
		if c <= ' ' || c == '"' || c == 0x7f || c > 0x7e {
			return strconv.Quote(s)
		}
	}
	return s
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush keeps streaming endpoints (httpbin /stream, /drip, /sse) streaming.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
