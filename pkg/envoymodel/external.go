package envoymodel

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// ServeExternal answers a request that left the mesh with an in-process handler (the stand-in
// server's): TLS that reached the host shows as r.TLS, so the handler sees the scheme it received.
func ServeExternal(h http.Handler, req ExternalRequest) (Response, error) {
	r := httptest.NewRequest(req.Method, req.Scheme+"://"+req.Host+req.Path, strings.NewReader(req.Body))
	r.Host = req.Host
	for k, v := range req.Header {
		r.Header[k] = v
	}
	r.TLS = nil
	if req.Scheme == "https" {
		r.TLS = &tls.ConnectionState{ServerName: req.SNI}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	hdr := res.Header.Clone()
	if hdr.Get("Content-Length") == "" && req.Method != http.MethodHead {
		hdr.Set("Content-Length", fmt.Sprint(rec.Body.Len()))
	}
	return Response{Status: res.StatusCode, Headers: hdr, Body: rec.Body.String()}, nil
}

// Observed is what curl would report for the response: a reset is exit 52 for plain HTTP (empty
// reply) and 35 when the client was in its TLS handshake; HEAD responses carry no body.
func (r Response) Observed(req *probe.Request, d time.Duration) outcome.Observed {
	if r.Reset {
		code, msg := 52, "Empty reply from server"
		if req.Scheme == "https" {
			code, msg = 35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to "+req.Host+":443"
		}
		return outcome.Observed{ExitCode: code, ErrorMessage: msg, Duration: d}
	}
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	body := r.Body
	if req.Method == http.MethodHead {
		body = ""
	}
	return outcome.Observed{HTTPCode: r.Status, HTTPVersion: r.Proto, Headers: h, Body: body, Duration: d}
}
