package standin

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const extendedHostsYAML = `
hosts:
- name: api.example.test
  ports:
  - {port: 8080, protocol: http}
  - {port: 8443, protocol: https}
  http:
    redirect: {status: 301, to: "https://api.example.test:8443/"}
  https:
    status: 200
    headers: {content-type: text/plain}
    body: "api\n"
    alpn: [http/1.1]
- name: slow.example.test
  http: {status: 200, body: "slow\n", delay: 1500ms}
  https: {status: 503, delay: 2s}
- name: echo.example.test
  ports: [{port: 8080, protocol: http}]
  http: {httpbin: true}
`

func extendedHosts(t *testing.T) []Host {
	t.Helper()
	hosts, err := LoadHosts([]byte(extendedHostsYAML))
	if err != nil {
		t.Fatal(err)
	}
	return hosts
}

func TestLoadHostsExtendedSchemaErrors(t *testing.T) {
	host := func(body string) string { return "hosts:\n- name: a.example\n" + body }
	cases := map[string]struct{ yaml, want string }{
		"port range":         {host("  ports: [{port: 0, protocol: http}]\n  http: {status: 200}"), "hosts[0] (a.example).ports[0].port: 0 is not a port number"},
		"port protocol":      {host("  ports: [{port: 8080, protocol: tcp}]\n  http: {status: 200}"), `hosts[0] (a.example).ports[0].protocol: "tcp", want http or https`},
		"port no protocol":   {host("  ports: [{port: 8080}]\n  http: {status: 200}"), "hosts[0] (a.example).ports[0].protocol: required"},
		"port twice":         {host("  ports: [{port: 8080, protocol: http}, {port: 8080, protocol: http}]\n  http: {status: 200}"), "hosts[0] (a.example).ports[1].port: 8080 already listed at ports[0]"},
		"port 53":            {host("  ports: [{port: 53, protocol: http}]\n  http: {status: 200}"), "ports[0].port: 53 is the stand-in's DNS port"},
		"port unknown field": {host("  ports: [{port: 8080, protocol: http, name: x}]\n  http: {status: 200}"), "field name not found"},
		"port without behaviour": {host("  ports: [{port: 8080, protocol: http}, {port: 8443, protocol: https}]\n  http: {status: 200}"),
			"hosts[0] (a.example).https: required: a port has protocol https"},
		"behaviour without port": {host("  ports: [{port: 8080, protocol: http}]\n  http: {status: 200}\n  https: {status: 200}"),
			"hosts[0] (a.example).https: no port has protocol https (ports: 8080/http)"},
		"default ports clash": {"hosts:\n- name: a.example\n  ports: [{port: 443, protocol: http}]\n  http: {status: 200}\n- name: b.example\n  http: {status: 200}\n  https: {status: 200}",
			"hosts[1] (b.example).ports (default: 80 http, 443 https): port 443 is https here but http for a.example"},
		"one protocol per port": {"hosts:\n- name: a.example\n  ports: [{port: 8080, protocol: http}]\n  http: {status: 200}\n- name: b.example\n  ports: [{port: 8080, protocol: https}]\n  https: {status: 200}",
			"hosts[1] (b.example).ports[0]: port 8080 is https here but http for a.example"},
		"redirect status":       {host("  http: {redirect: {status: 200, to: 'https://a.example'}}\n  https: {status: 200}"), "hosts[0] (a.example).http.redirect.status: 200, want 301"},
		"redirect to":           {host("  http: {redirect: {status: 301}}\n  https: {status: 200}"), "http.redirect.to: required"},
		"redirect relative":     {host("  http: {redirect: {status: 301, to: /x}}\n  https: {status: 200}"), `http.redirect.to: "/x" is not an absolute http(s) URL`},
		"redirect query":        {host("  http: {redirect: {status: 301, to: 'https://a.example/?a=1'}}\n  https: {status: 200}"), "has a query or fragment"},
		"redirect and status":   {host("  http: {status: 301, redirect: {status: 301, to: 'https://a.example'}}\n  https: {status: 200}"), "http.status: not allowed with redirect"},
		"redirect and location": {host("  http: {redirect: {status: 301, to: 'https://a.example'}, headers: {Location: x}}\n  https: {status: 200}"), "http.headers: location is set by the redirect"},
		"delay type":            {host("  http: {status: 200, delay: soon}\n  https: {status: 200}"), "cannot unmarshal"},
		"delay negative":        {host("  http: {status: 200, delay: -1s}\n  https: {status: 200}"), "hosts[0] (a.example).http.delay: -1s, want 0 to 5m0s"},
		"delay too long":        {host("  http: {status: 200, delay: 6m}\n  https: {status: 200}"), "http.delay: 6m0s, want 0 to 5m0s"},
		"delay with httpbin":    {host("  http: {httpbin: true, delay: 1s}\n  https: {status: 200}"), "http.delay: not allowed with httpbin: true (httpbin has /delay/N)"},
		"alpn on http":          {host("  http: {status: 200, alpn: [h2]}\n  https: {status: 200}"), "hosts[0] (a.example).http.alpn: only for https"},
		"alpn value":            {host("  http: {status: 200}\n  https: {status: 200, alpn: [h3]}"), `hosts[0] (a.example).https.alpn[0]: "h3", want h2 or http/1.1`},
		"alpn twice":            {host("  http: {status: 200}\n  https: {status: 200, alpn: [h2, h2]}"), `https.alpn[1]: "h2" listed twice`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadHosts([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	if err := ValidateHostsAt("spec.hosts", []Host{{Name: "a.example", Ports: []Port{{Port: 70000, Protocol: "http"}}, HTTP: &Behaviour{Status: 200}}}); err == nil ||
		!strings.Contains(err.Error(), "spec.hosts[0] (a.example).ports[0].port: 70000") {
		t.Errorf("ValidateHostsAt names the list: %v", err)
	}
}

func TestExtendedHostsRoundTrip(t *testing.T) {
	hosts := extendedHosts(t)
	data, err := MarshalHosts(hosts)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadHosts(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for i := range hosts {
		if !hosts[i].Equal(back[i]) {
			t.Errorf("%s differs after a round trip:\n%s", hosts[i].Name, data)
		}
	}
	if hosts[1].HTTP.Delay != 1500*time.Millisecond || hosts[0].HTTPS.ALPN[0] != "http/1.1" {
		t.Errorf("decoded %+v %+v", hosts[1].HTTP, hosts[0].HTTPS)
	}
	if got := fmt.Sprint(ServerPorts(hosts)); got != "[{80 http} {443 https} {8080 http} {8443 https}]" {
		t.Errorf("ServerPorts = %s", got)
	}
	other := hosts[1]
	other.HTTP = &Behaviour{Status: 200, Body: "slow\n", Delay: time.Second}
	if hosts[1].Equal(other) {
		t.Error("Equal ignores the delay")
	}
}

// inProcess serves a synthetic request on the given port, the way the offline backend does.
func inProcess(h *Handler, method, host string, port int, tlsOn bool, path string) (*httptest.ResponseRecorder, Answer) {
	r := httptest.NewRequest(method, "http://"+host+path, nil)
	r.Host = host
	r.TLS = nil
	if tlsOn {
		r.TLS = &tls.ConnectionState{ServerName: host}
	}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 10), Port: port}))
	w := httptest.NewRecorder()
	a := h.Answer(w, r)
	return w, a
}

func TestHandlerPortsRedirectInProcess(t *testing.T) {
	h := NewHandler(extendedHosts(t))
	w, a := inProcess(h, "GET", "api.example.test", 8080, false, "/v1/items?id=7&x=a%20b")
	if w.Code != 301 || w.Header().Get("Location") != "https://api.example.test:8443/v1/items?id=7&x=a%20b" {
		t.Errorf("redirect: %d location %q", w.Code, w.Header().Get("Location"))
	}
	if a.Proto != "1.1" || a.Delay != 0 || a.WrongProtocol {
		t.Errorf("redirect answer %+v", a)
	}
	w, a = inProcess(h, "GET", "api.example.test", 8443, true, "/")
	if w.Code != 200 || w.Body.String() != "api\n" || a.Proto != "1.1" {
		t.Errorf("https on 8443 with alpn [http/1.1]: %d %q %+v", w.Code, w.Body.String(), a)
	}
	// Not a port of the host: 421, naming its ports.
	w, _ = inProcess(h, "GET", "api.example.test", 80, false, "/")
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), "8080/http, 8443/https") {
		t.Errorf("port 80 of api.example.test: %d %q", w.Code, w.Body.String())
	}
	// A host without ports: is on 80 and 443 only.
	if w, _ := inProcess(h, "GET", "slow.example.test", 8080, false, "/"); w.Code != http.StatusMisdirectedRequest {
		t.Errorf("port 8080 of slow.example.test: %d", w.Code)
	}
	// TLS to the plain-HTTP port: not an answer of the host.
	if _, a := inProcess(h, "GET", "api.example.test", 8080, true, "/"); !a.WrongProtocol {
		t.Error("TLS to an http port is not flagged")
	}
	// Without a port in the context: the scheme's default port.
	r := httptest.NewRequest("GET", "http://slow.example.test/", nil)
	r.TLS = &tls.ConnectionState{ServerName: "slow.example.test"}
	if RequestPort(r) != 443 {
		t.Errorf("RequestPort = %d, want 443", RequestPort(r))
	}
	// httpbin on a declared non-default port.
	w, _ = inProcess(h, "GET", "echo.example.test:8080", 8080, false, "/anything?q=1")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"url": "http://echo.example.test:8080/anything?q=1"`) {
		t.Errorf("httpbin on 8080: %d %s", w.Code, w.Body.String())
	}
}

// TestDelayInProcessIsNotWaited: Answer returns the delay at once; ServeHTTP (the server) waits it.
func TestDelayInProcessIsNotWaited(t *testing.T) {
	h := NewHandler(extendedHosts(t))
	start := time.Now()
	w, a := inProcess(h, "GET", "slow.example.test", 80, false, "/")
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Answer waited %s", took)
	}
	if w.Code != 200 || a.Delay != 1500*time.Millisecond {
		t.Errorf("slow http: %d %+v", w.Code, a)
	}
	w, a = inProcess(h, "GET", "slow.example.test", 443, true, "/")
	if w.Code != 503 || a.Delay != 2*time.Second || a.Proto != "2" {
		t.Errorf("slow https: %d %+v", w.Code, a)
	}
	// httpbin's /delay/N: the delay comes back, nothing sleeps, the body is httpbin's.
	hb := NewHandler([]Host{{Name: "httpbin.org", HTTP: &Behaviour{HTTPBin: true}, HTTPS: &Behaviour{HTTPBin: true}}})
	start = time.Now()
	w, a = inProcess(hb, "GET", "httpbin.org", 80, false, "/delay/3")
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Answer of /delay/3 waited %s", took)
	}
	if w.Code != 200 || a.Delay != 3*time.Second || !strings.Contains(w.Body.String(), `"url": "http://httpbin.org/delay/3"`) ||
		w.Header().Get("Server-Timing") != `initial_delay;dur=3000.00;desc="initial delay"` {
		t.Errorf("/delay/3 in process: %d %+v %v %s", w.Code, a, w.Header(), w.Body.String())
	}
	if w, a := inProcess(hb, "GET", "httpbin.org", 80, false, "/delay/11"); w.Code != 400 || a.Delay != 0 {
		t.Errorf("/delay/11 (over httpbin's bound): %d %+v", w.Code, a)
	}

	// The server waits.
	s := startStandinWith(t, extendedHosts(t))
	start = time.Now()
	r := s.curl(t, "http", "slow.example.test", "/", false)
	if took := time.Since(start); r.status != 200 || took < 1500*time.Millisecond {
		t.Errorf("server: %s after %s, want 200 after at least 1.5s", r, took)
	}
}

// TestServerPortsAndALPN: the server answers on a declared non-default port, redirects keeping
// the path and query, and a host restricted to http/1.1 does not negotiate HTTP/2.
func TestServerPortsAndALPN(t *testing.T) {
	s := startStandinWith(t, extendedHosts(t))
	port := func(p int) string { return fmt.Sprint(s.ports[p]) }
	resolve := func(host string, p int) []string {
		return []string{"--resolve", fmt.Sprintf("%s:%d:127.0.0.1", host, s.ports[p]), "--cacert", s.caFile}
	}
	r := s.curlURL(t, "http://api.example.test:"+port(8080)+"/a/b?c=d", resolve("api.example.test", 8080)...)
	if r.exit != 0 || r.status != 301 || r.header.Get("Location") != "https://api.example.test:8443/a/b?c=d" {
		t.Errorf("redirect on 8080: %s", r)
	}
	r = s.curlURL(t, "https://api.example.test:"+port(8443)+"/", resolve("api.example.test", 8443)...)
	if r.exit != 0 || r.status != 200 || r.httpVersion != "1.1" || r.body != "api\n" {
		t.Errorf("https on 8443 (alpn [http/1.1]): %s", r)
	}
	// The same listener gives HTTP/2 to a host that allows it.
	r = s.curlURL(t, "https://slow.example.test:"+port(443)+"/", resolve("slow.example.test", 443)...)
	if r.exit != 0 || r.status != 503 || r.httpVersion != "2" {
		t.Errorf("https slow.example.test: %s", r)
	}
	r = s.curlURL(t, "http://echo.example.test:"+port(8080)+"/anything", resolve("echo.example.test", 8080)...)
	if r.exit != 0 || r.status != 200 || !strings.Contains(r.body, `"url": "http://echo.example.test:`+port(8080)+`/anything"`) {
		t.Errorf("httpbin on 8080: %s", r)
	}
	// A host on a port it does not declare (the listener is another host's): 421.
	r = s.curlURL(t, "http://slow.example.test:"+port(8080)+"/", resolve("slow.example.test", 8080)...)
	if r.status != 421 {
		t.Errorf("slow.example.test on 8080: %s", r)
	}
	if !strings.Contains(s.log.String(), "port=8443") {
		t.Errorf("the log does not name the declared port:\n%s", s.log.String())
	}
}
