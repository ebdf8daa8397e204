package envoymodel

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
