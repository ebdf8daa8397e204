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
	"strconv"
	"sync"
	"time"

	"github.com/egressconf/egressconf/pkg/pki"
)

// Default listen addresses of Server.
const (
	DefaultHTTPAddr  = ":80"
	DefaultHTTPSAddr = ":443"
)

// Server serves hosts on plain HTTP and on HTTPS. Over TLS the leaf certificate is chosen by SNI
// (pki.Bundle.GetCertificate) and HTTP/2 is negotiated by ALPN when the client offers it
// ("h2"), HTTP/1.1 otherwise.
type Server struct {
	// Hosts served; DefaultHosts() when nil.
	Hosts []Host
	// Certs has a leaf for every host served over HTTPS. Required unless HTTPS is disabled.
	Certs *pki.Bundle
	// HTTPAddr and HTTPSAddr to listen on; DefaultHTTPAddr / DefaultHTTPSAddr when empty, "-" to
	// disable that listener.
	HTTPAddr  string
	HTTPSAddr string
	// Log receives one line per request (see LogRequests); nil logs nothing.
	Log io.Writer
	// ErrorLog receives the servers' own errors (TLS handshake failures, ...); nil: the log
	// package's standard logger.
	ErrorLog *log.Logger
	// ShutdownTimeout bounds the graceful shutdown after the context ends; default 5s.
	ShutdownTimeout time.Duration
}

// ListenAndServe listens on HTTPAddr and HTTPSAddr and serves until ctx ends, then shuts down
// gracefully. It returns nil after a shutdown caused by ctx.
func (s *Server) ListenAndServe(ctx context.Context) error {
	httpAddr, httpsAddr := s.HTTPAddr, s.HTTPSAddr
	if httpAddr == "" {
		httpAddr = DefaultHTTPAddr
	}
	if httpsAddr == "" {
		httpsAddr = DefaultHTTPSAddr
	}
	var lc net.ListenConfig
	var httpL, httpsL net.Listener
	var err error
	if httpAddr != "-" {
		if httpL, err = lc.Listen(ctx, "tcp", httpAddr); err != nil {
			return fmt.Errorf("standin: listen HTTP: %w", err)
		}
	}
	if httpsAddr != "-" {
		if httpsL, err = lc.Listen(ctx, "tcp", httpsAddr); err != nil {
			if httpL != nil {
				httpL.Close()
			}
			return fmt.Errorf("standin: listen HTTPS: %w", err)
		}
	}
	return s.Serve(ctx, httpL, httpsL)
}

// Serve serves plain HTTP on httpL and TLS on httpsL (either may be nil, not both) until ctx
// ends, then shuts down gracefully and returns nil. It closes the listeners.
func (s *Server) Serve(ctx context.Context, httpL, httpsL net.Listener) error {
	if httpL == nil && httpsL == nil {
		return errors.New("standin: no listener")
	}
	hosts := s.Hosts
	if hosts == nil {
		hosts = DefaultHosts()
	}
	if err := ValidateHosts(hosts); err != nil {
		return err
	}
	if httpsL != nil {
		if s.Certs == nil {
			httpsL.Close()
			if httpL != nil {
				httpL.Close()
			}
			return errors.New("standin: HTTPS needs certificates (Server.Certs)")
		}
		for _, n := range HostNames(hosts) {
			if _, ok := s.Certs.Leaf(n); !ok {
				httpsL.Close()
				if httpL != nil {
					httpL.Close()
				}
				return fmt.Errorf("standin: no certificate for host %s", n)
			}
		}
	}
	var h http.Handler = NewHandler(hosts)
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
	done := make(chan served, 2)
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          s.ErrorLog,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	if httpL != nil {
		srv := newServer()
		servers = append(servers, srv)
		go func() { done <- served{"HTTP", srv, srv.Serve(httpL)} }()
	}
	if httpsL != nil {
		srv := newServer()
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.Certs.GetCertificate,
			// ServeTLS adds "h2" itself; listing it keeps the preference explicit.
			NextProtos: []string{"h2", "http/1.1"},
		}
		servers = append(servers, srv)
		go func() { done <- served{"HTTPS", srv, srv.ServeTLS(httpsL, "", "")} }()
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
//	2026-01-02T15:04:05.000Z host=www.aliyun.com scheme=http proto=HTTP/1.1 method=HEAD path=/ status=301 bytes=0 dur=0.2ms sni= remote=10.244.0.7:51234
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
			line := fmt.Sprintf("%s host=%s scheme=%s proto=%s method=%s path=%s status=%d bytes=%d dur=%.1fms sni=%s remote=%s\n",
				start.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				logValue(r.Host), RequestScheme(r), logValue(r.Proto), logValue(r.Method), logValue(path),
				status, rec.bytes, float64(time.Since(start).Microseconds())/1000, logValue(sni), logValue(r.RemoteAddr))
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
