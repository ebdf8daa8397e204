package envoymodel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
)

// InProcessHost is a handler that also answers without waiting (standin.Handler): the delay the
// host would wait, the HTTP version its TLS negotiates and whether the port speaks the request's
// protocol come back beside the response.
type InProcessHost interface {
	Answer(w http.ResponseWriter, r *http.Request) standin.Answer
}

// ServeExternal answers a request that left the mesh with an in-process handler (the stand-in
// server's): TLS that reached the host shows as r.TLS, so the handler sees the scheme it received,
// and the port it came to is the context's http.LocalAddrContextKey. With an InProcessHost the
// response carries the host's Delay (not waited) and, over TLS, the HTTP version the host
// negotiates; a request in the wrong protocol for the host's port is out of model (what a client
// sees then is not an HTTP answer of the host).
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
	if req.Port > 0 {
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP(ExternalAddress), Port: req.Port}))
	}
	rec := httptest.NewRecorder()
	var a standin.Answer
	if ip, ok := h.(InProcessHost); ok {
		a = ip.Answer(rec, r)
		if a.WrongProtocol {
			return Response{}, OutOfModel("%s to port %d of %s, which serves the other protocol", req.Scheme, req.Port, req.Host)
		}
	} else {
		h.ServeHTTP(rec, r)
	}
	res := rec.Result()
	hdr := res.Header.Clone()
	if hdr.Get("Content-Length") == "" && req.Method != http.MethodHead {
		hdr.Set("Content-Length", fmt.Sprint(rec.Body.Len()))
	}
	out := Response{Status: res.StatusCode, Headers: hdr, Body: rec.Body.String(), Delay: a.Delay}
	if req.Scheme == "https" {
		out.Proto = a.Proto
	}
	return out, nil
}

// Observed is what curl would report for the response: a reset is exit 52 for plain HTTP (empty
// reply) and 35 when the client was in its TLS handshake; HEAD responses carry no body.
func (r Response) Observed(req *probe.Request, d time.Duration) outcome.Observed {
	if r.Reset {
		code, msg := 52, "Empty reply from server"
		if req.Scheme == "https" {
			code, msg = 35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to "+req.Host+":443"
		}
		return outcome.Observed{ExitCode: code, ErrorMessage: msg, Duration: d, DurationUnknown: true}
	}
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	body := r.Body
	if req.Method == http.MethodHead {
		body = ""
	}
	return outcome.Observed{HTTPCode: r.Status, HTTPVersion: r.Proto, Headers: h, Body: body, Duration: d, DurationUnknown: true,
		Hops: []outcome.Hop{{Status: r.Status, HTTPVersion: r.Proto, Headers: h}}}
}

// Predict is what curl would report for the document's request given the predicted response, or
// an outcome.OutOfModelError where the request depends on more than one predicted response:
//   - --resolve for the request's own host and port: the connection goes to that address, while
//     the model connects where the mesh's DNS would;
//   - -L and a redirect (3xx with a Location): curl sends another request, which is not predicted;
//   - the document's --max-time and a response Envoy sends after waiting (408, 504): whether curl
//     gives up first depends on times the model does not know.
func Predict(req *probe.Request, r Response, d time.Duration) (outcome.Observed, error) {
	if req.ResolvesTarget() {
		return outcome.Observed{}, &outcome.OutOfModelError{Need: "curl --resolve pins the address of " + req.Host + ": the model connects where DNS would"}
	}
	if req.FollowRedirects && !r.Reset && r.Status >= 300 && r.Status < 400 && r.Headers.Get("Location") != "" {
		return outcome.Observed{}, &outcome.OutOfModelError{Need: fmt.Sprintf("following a redirect (curl -L): the model predicts the first response (%d to %s), not the request curl sends next", r.Status, r.Headers.Get("Location"))}
	}
	if req.MaxTime > 0 && !r.Reset && (r.Status == http.StatusGatewayTimeout || r.Status == http.StatusRequestTimeout) {
		return outcome.Observed{}, &outcome.OutOfModelError{Need: fmt.Sprintf("elapsed time: whether curl --max-time %s ends before Envoy's %d", req.MaxTime, r.Status)}
	}
	return r.Observed(req, d), nil
}

// ExternalDelayOf is how long the host behind h takes to answer req (ExternalDelays for a World
// whose external hosts are an in-process stand-in): the delay the host declares, or httpbin's
// /delay/N, learned without waiting; ok=false when the host does not answer req in process.
func ExternalDelayOf(h http.Handler, req ExternalRequest) (time.Duration, bool) {
	if _, ok := h.(InProcessHost); !ok {
		return 0, false
	}
	resp, err := ServeExternal(h, req)
	if err != nil {
		return 0, false
	}
	return resp.Delay, true
}
