package standin

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// serve runs the handler in process, the way the offline backend does: a synthetic request,
// a recorder, and r.TLS set to mean HTTPS.
func serve(t *testing.T, h http.Handler, method, target string, tlsOn bool, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rb *bytes.Reader
	if body != "" {
		rb = bytes.NewReader([]byte(body))
	}
	var r *http.Request
	if rb != nil {
		r = httptest.NewRequest(method, target, rb)
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if tlsOn {
		r.TLS = &tls.ConnectionState{ServerName: RequestHost(r)}
	} else {
		r.TLS = nil // httptest.NewRequest sets TLS for https:// targets; be explicit
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerInProcess(t *testing.T) {
	h := NewHandler(builtinHosts(t))

	w := serve(t, h, "HEAD", "http://www.aliyun.com/", false, "", nil)
	if w.Code != 301 || w.Header().Get("Location") != "https://www.aliyun.com/" {
		t.Errorf("aliyun http: %d location=%q", w.Code, w.Header().Get("Location"))
	}
	if w.Body.Len() != 0 {
		t.Errorf("HEAD wrote a body: %q", w.Body.String())
	}
	if w.Header().Get(HeaderStandin) != "www.aliyun.com" {
		t.Errorf("%s = %q", HeaderStandin, w.Header().Get(HeaderStandin))
	}
	w = serve(t, h, "GET", "http://www.aliyun.com/", true, "", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "www.aliyun.com") {
		t.Errorf("aliyun https: %d %q", w.Code, w.Body.String())
	}
	for _, host := range []string{"www.alibabacloud.com", "developers.google.com", "developer.yahoo.com"} {
		for _, tlsOn := range []bool{false, true} {
			w := serve(t, h, "GET", "http://"+host+"/", tlsOn, "", nil)
			if w.Code != 200 {
				t.Errorf("%s tls=%v: %d", host, tlsOn, w.Code)
			}
			if w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Errorf("%s: content-length %s for %d bytes", host, w.Header().Get("Content-Length"), w.Body.Len())
			}
		}
	}
}

func TestHandlerHostMatching(t *testing.T) {
	h := NewHandler(builtinHosts(t))
	for _, target := range []string{"http://WWW.Aliyun.COM/", "http://www.aliyun.com:80/", "http://www.aliyun.com.:8080/"} {
		if w := serve(t, h, "GET", target, false, "", nil); w.Code != 301 {
			t.Errorf("%s: %d, want 301", target, w.Code)
		}
	}
	w := serve(t, h, "GET", "http://example.com/", false, "", nil)
	if w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("unknown host: %d, want 421", w.Code)
	}
	if b := w.Body.String(); !strings.Contains(b, `"example.com"`) || !strings.Contains(b, "httpbin.org") {
		t.Errorf("421 body does not name the host and the known hosts: %q", b)
	}
	if w.Header().Get(HeaderStandin) != "" {
		t.Error("421 carries the stand-in host header")
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "[::1]:80"
	if got := RequestHost(r); got != "::1" {
		t.Errorf("RequestHost([::1]:80) = %q", got)
	}
}

func TestHandlerHTTPBinSchemeIsTheServers(t *testing.T) {
	h := NewHandler(builtinHosts(t))
	for _, c := range []struct {
		tls      bool
		xfp      string
		wantURL  string
		hostName string
	}{
		{false, "", "http://httpbin.org/anything", "httpbin.org"},
		{true, "", "https://httpbin.org/anything", "httpbin.org"},
		// A client-sent X-Forwarded-Proto must not change the reported scheme.
		{false, "https", "http://www.httpbin.org/anything", "www.httpbin.org"},
		{true, "http", "https://www.httpbin.org/anything", "www.httpbin.org"},
	} {
		hdr := map[string]string{}
		if c.xfp != "" {
			hdr["X-Forwarded-Proto"] = c.xfp
			hdr["X-Forwarded-Ssl"] = "on"
		}
		w := serve(t, h, "GET", "http://"+c.hostName+"/anything", c.tls, "", hdr)
		if w.Code != 200 {
			t.Fatalf("%+v: %d", c, w.Code)
		}
		// The documents check this exact text.
		if want := `"url": "` + c.wantURL + `"`; !strings.Contains(w.Body.String(), want) {
			t.Errorf("%+v: body lacks %s:\n%s", c, want, w.Body.String())
		}
		var resp struct {
			Headers map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if c.xfp != "" {
			if got := resp.Headers[ReceivedHeaderPrefix+"X-Forwarded-Proto"]; got != c.xfp {
				t.Errorf("%+v: the client's X-Forwarded-Proto is not kept aside: %v", c, resp.Headers)
			}
			if _, ok := resp.Headers["X-Forwarded-Proto"]; ok {
				t.Errorf("%+v: X-Forwarded-Proto reached httpbin", c)
			}
		}
	}

	// A synthetic request may carry a non-canonical key; it must not decide the scheme either.
	r := httptest.NewRequest("GET", "http://httpbin.org/anything", nil)
	r.Header["x-forwarded-proto"] = []string{"https"}
	r.TLS = nil
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if !strings.Contains(rec.Body.String(), `"url": "http://httpbin.org/anything"`) ||
		!strings.Contains(rec.Body.String(), ReceivedHeaderPrefix+"X-Forwarded-Proto") {
		t.Errorf("non-canonical X-Forwarded-Proto:\n%s", rec.Body.String())
	}

	w := serve(t, h, "POST", "http://httpbin.org/post", false, `{"a":1}`, map[string]string{"Content-Type": "application/json"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"a": 1`) {
		t.Errorf("POST /post: %d %s", w.Code, w.Body.String())
	}
	if w := serve(t, h, "GET", "http://httpbin.org/status/418", true, "", nil); w.Code != 418 {
		t.Errorf("/status/418: %d", w.Code)
	}
	if w := serve(t, h, "GET", "http://httpbin.org/get", true, "", nil); w.Code != 200 || w.Header().Get(HeaderStandin) != "httpbin.org" {
		t.Errorf("/get: %d %v", w.Code, w.Header())
	}
}

func TestNewHandlerPanicsOnInvalidHosts(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "hosts[0].name: required") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	NewHandler([]Host{{HTTP: &Behaviour{Status: 200}, HTTPS: &Behaviour{Status: 200}}})
}

// TestHTTPBinEchoHasHTTPBinOrgShape: an echoed header, argument or form field is one string, several
// values joined by "," (httpbin.org), not go-httpbin's list; other endpoints pass through.
func TestHTTPBinEchoHasHTTPBinOrgShape(t *testing.T) {
	h := NewHTTPBinHandler()
	req := httptest.NewRequest("GET", "http://httpbin.org/anything/x?a=1&a=2", nil)
	req.Header.Add("X-Two", "one")
	req.Header.Add("X-Two", "two")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var doc struct {
		Args    map[string]string `json:"args"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, w.Body.String())
	}
	if doc.Args["a"] != "1,2" || doc.Headers["X-Two"] != "one,two" || doc.Headers["Host"] != "httpbin.org" {
		t.Errorf("args %v headers %v: want httpbin.org's joined strings", doc.Args, doc.Headers)
	}
	if w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
		t.Errorf("Content-Length %s for a body of %d", w.Header().Get("Content-Length"), w.Body.Len())
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://httpbin.org/status/418", nil))
	if w.Code != 418 {
		t.Errorf("/status/418: %d", w.Code)
	}
}
