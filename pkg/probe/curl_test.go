package probe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/outcome"
)

func TestParseCurl(t *testing.T) {
	cases := []struct {
		cmd                string
		method, host, path string
		scheme             string
		port               int
		data               string
	}{
		{"curl -I http://www.aliyun.com", "HEAD", "www.aliyun.com", "/", "http", 80, ""},
		{`curl -s -o /dev/null -w "%{http_code}\n" http://www.httpbin.org`, "GET", "www.httpbin.org", "/", "http", 80, ""},
		{"curl -X POST http://www.httpbin.org/post", "POST", "www.httpbin.org", "/post", "http", 80, ""},
		{"curl -I https://developers.google.com", "HEAD", "developers.google.com", "/", "https", 443, ""},
		{"curl -s http://httpbin.org/anything?x=1", "GET", "httpbin.org", "/anything?x=1", "http", 80, ""},
		{"curl -d 'a=b c' http://h:8080/p", "POST", "h", "/p", "http", 8080, "a=b c"},
	}
	for _, c := range cases {
		r, err := ParseCurl(c.cmd)
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		if r.Method != c.method || r.Host != c.host || r.Path != c.path || r.Scheme != c.scheme || r.Port != c.port || r.Data != c.data {
			t.Errorf("%s: got %+v", c.cmd, r)
		}
	}
	for _, bad := range []string{"", "wget http://x", "curl", "curl -k https://x", "curl ftp://x", "curl -I -X GET http://x", "curl 'http://x", "curl http://a http://b", "curl -X"} {
		if _, err := ParseCurl(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func runCurl(t *testing.T, req *Request, o Options) outcome.Observed {
	t.Helper()
	cmd := exec.Command("curl", Args(req, o)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	obs, perr := ParseOutput(stdout.String(), stderr.String(), code)
	if perr != nil {
		t.Fatalf("parse: %v\nstdout=%q", perr, stdout.String())
	}
	return obs
}

func mustParse(t *testing.T, cmd string) *Request {
	t.Helper()
	r, err := ParseCurl(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRealCurl runs the real curl binary against loopback servers for every outcome kind.
func TestRealCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required: apt-get install curl")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			w.Header().Set("Location", "https://www.aliyun.com/")
			w.WriteHeader(301)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(200)
			io.WriteString(w, r.Method+" "+string(b)+"\n\nsecond paragraph\nHTTP/1.1 200 not a header")
		default:
			w.Header().Set("Server", "envoy")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.WriteHeader(403)
			io.WriteString(w, "RBAC: access denied")
		}
	}))
	defer srv.Close()
	o := Options{ConnectTimeout: 2 * time.Second, MaxTime: 3 * time.Second}

	obs := runCurl(t, mustParse(t, "curl -I "+srv.URL+"/redirect"), o)
	if err := outcome.Match(&outcome.Expected{Result: outcome.Results{{Kind: outcome.KindStatus, Status: 301}}, Headers: map[string]string{"Location": "https://www.aliyun.com/"}}, obs); err != nil {
		t.Errorf("HEAD 301: %v (%+v)", err, obs)
	}
	obs = runCurl(t, mustParse(t, "curl "+srv.URL+"/x"), o)
	if obs.HTTPCode != 403 || obs.Body != "RBAC: access denied" || obs.Headers["server"] != "envoy" || obs.Headers["x-multi"] != "a, b" || obs.HTTPVersion != "1.1" {
		t.Errorf("GET 403: %+v", obs)
	}
	obs = runCurl(t, mustParse(t, "curl -d hello "+srv.URL+"/post"), o)
	if obs.HTTPCode != 200 || !strings.HasPrefix(obs.Body, "POST hello\n\nsecond paragraph") {
		t.Errorf("POST: %+v", obs)
	}

	// A connection accepted and closed at once: Envoy's BlackHoleCluster on plain HTTP.
	closer := listen(t, func(c net.Conn) { c.Close() })
	obs = runCurl(t, mustParse(t, "curl http://"+closer), o)
	if !obs.Is(outcome.Result{Kind: outcome.KindReset}) {
		t.Errorf("closed connection: %s, want reset", obs.Summary())
	}
	// The same on TLS: curl exit 35.
	obs = runCurl(t, mustParse(t, "curl -I https://"+closer), o)
	if obs.ExitCode != 35 || !obs.Is(outcome.Result{Kind: outcome.KindReset}) {
		t.Errorf("TLS closed: %s, want reset (exit 35)", obs.Summary())
	}
	// Accepted but never answered: --max-time gives 28, a timeout.
	silent := listen(t, func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() })
	obs = runCurl(t, mustParse(t, "curl http://"+silent), Options{MaxTime: 500 * time.Millisecond})
	if obs.ExitCode != 28 || !obs.Is(outcome.Result{Kind: outcome.KindTimeout}) {
		t.Errorf("silent: %s, want timeout (28)", obs.Summary())
	}
	// Refused: exit 7, never a reset, and a timeout only where the catalog says the CNI rejects.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	obs = runCurl(t, mustParse(t, "curl http://"+addr), o)
	if obs.ExitCode != 7 || obs.Is(outcome.Result{Kind: outcome.KindReset}) {
		t.Errorf("refused: %s", obs.Summary())
	}
	timeout := outcome.Results{{Kind: outcome.KindTimeout}}
	if outcome.Match(&outcome.Expected{Result: timeout}, obs) == nil || outcome.Match(&outcome.Expected{Result: timeout, CNIRejects: true}, obs) != nil {
		t.Errorf("refused %s: a timeout only with cniRejects", obs.Summary())
	}
}

func listen(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().String()
}

func TestParseOutputRejectsMissingWriteOut(t *testing.T) {
	if _, err := ParseOutput("", "sh: curl: not found", 127); err == nil {
		t.Fatal("a curl that never ran was parsed as an outcome")
	}
	if _, err := ParseOutput("HTTP/1.1 200 OK\r\n\r\n"+Marker+`{"http_code":200,"exitcode":0}`, "", 6); err == nil {
		t.Fatal("exit code mismatch accepted")
	}
}

func TestParseOutput100Continue(t *testing.T) {
	out := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\nRBAC: access denied" + Marker + `{"http_code":403,"http_version":"1.1","exitcode":0}`
	obs, err := ParseOutput(out, "", 0)
	if err != nil || obs.HTTPCode != 403 || obs.Headers["content-length"] != "19" || obs.Body != "RBAC: access denied" {
		t.Fatalf("%+v %v", obs, err)
	}
}

// FuzzParseOutput: the parser never panics and never reports a status without a write-out.
func FuzzParseOutput(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"+Marker+`{"http_code":200,"exitcode":0}`, "", 0)
	f.Add(Marker+`{"http_code":0,"exitcode":35,"errormsg":"SSL"}`, "curl: (35)", 35)
	f.Add("HTTP/2 200\n\n"+Marker+`{}`, "", 0)
	f.Add("garbage", "err", 1)
	f.Fuzz(func(t *testing.T, stdout, stderr string, code int) {
		obs, err := ParseOutput(stdout, stderr, code)
		if err != nil {
			return
		}
		if !strings.Contains(stdout, Marker) {
			t.Fatalf("parsed without marker: %+v", obs)
		}
		if obs.ExitCode != code {
			t.Fatalf("exit code %d, process said %d", obs.ExitCode, code)
		}
		// The body is what curl printed before the write-out, never part of the write-out.
		if i := strings.LastIndex(stdout, Marker); !strings.Contains(stdout[:i], obs.Body) {
			t.Fatalf("body %q is not in curl's output before the write-out", obs.Body)
		}
		// One observation is at most one kind of result: a status, a reset or a timeout.
		kinds := 0
		for _, r := range []outcome.Result{{Kind: outcome.KindStatus, Status: obs.HTTPCode}, {Kind: outcome.KindReset}, {Kind: outcome.KindTimeout}} {
			if obs.Is(r) {
				kinds++
			}
		}
		if kinds > 1 {
			t.Fatalf("%+v reads as %d kinds of result", obs, kinds)
		}
		if obs.Summary() == "" {
			t.Fatalf("%+v has no summary", obs)
		}
	})
}

func FuzzParseCurl(f *testing.F) {
	f.Add("curl -I http://www.aliyun.com")
	f.Add(`curl -s -o /dev/null -w "%{http_code}\n" http://www.httpbin.org`)
	f.Fuzz(func(t *testing.T, cmd string) {
		r, err := ParseCurl(cmd)
		if err != nil {
			return
		}
		if r.Port < 1 || r.Port > 65535 {
			t.Fatalf("%q: parsed port %d out of range", cmd, r.Port)
		}
		if r.Host == "" || (r.Scheme != "http" && r.Scheme != "https") || r.Method == "" {
			t.Fatalf("accepted incomplete request %+v", r)
		}
		// What the probe runs must send the method the document's command sends.
		if got := methodCurlSends(Args(r, Options{})); got != r.Method {
			t.Fatalf("%q: parsed method %s, but the probe's curl arguments send %s", cmd, r.Method, got)
		}
		// The URL the probe requests parses back to the same target.
		again, err := ParseCurl("curl '" + strings.ReplaceAll(r.URL, "'", `'\''`) + "'")
		if err != nil {
			t.Fatalf("%q: its URL %q does not parse again: %v", cmd, r.URL, err)
		}
		if again.Host != r.Host || again.Port != r.Port || again.Scheme != r.Scheme || again.Path != r.Path {
			t.Fatalf("%q: URL parsed again as %+v, first as %+v", cmd, again, r)
		}
	})
}

// methodCurlSends is the method curl uses for an argument list, by curl's own rules: -I is HEAD,
// -X names it, data without -X is POST, else GET.
func methodCurlSends(args []string) string {
	method, head, data := "", false, false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-I", "--head":
			head = true
		case "-X", "--request":
			i++
			method = args[i]
		case "-d", "--data", "--data-raw", "--data-binary":
			i++
			data = true
		case "-D", "-H", "-w", "--local-port", "--connect-timeout", "--max-time", "--cacert", "--resolve":
			i++
		}
	}
	switch {
	case method != "":
		return method
	case head:
		return "HEAD"
	case data:
		return "POST"
	}
	return "GET"
}

// TestMethodAsCurlSendsIt: the probe's arguments send the method the document's command sends,
// and a GET or HEAD with data (which curl would send with a body) is refused.
func TestMethodAsCurlSendsIt(t *testing.T) {
	for _, c := range []struct{ cmd, method string }{
		{"curl -d a=b http://h/", "POST"},
		{"curl -X POST -d a=b http://h/", "POST"},
		{"curl -X PUT -d a=b http://h/", "PUT"},
		{"curl -X DELETE http://h/", "DELETE"},
		{"curl -I http://h/", "HEAD"},
		{"curl http://h/", "GET"},
	} {
		r := mustParse(t, c.cmd)
		if r.Method != c.method {
			t.Errorf("%s: parsed %s, want %s", c.cmd, r.Method, c.method)
		}
		if got := methodCurlSends(Args(r, Options{})); got != c.method {
			t.Errorf("%s: the probe would send %s, want %s (args %q)", c.cmd, got, c.method, Args(r, Options{}))
		}
	}
	for _, bad := range []string{"curl -X GET -d a=b http://h/", "curl -X HEAD -d a=b http://h/", "curl -I -d a=b http://h/"} {
		if _, err := ParseCurl(bad); err == nil || !strings.Contains(err.Error(), "-d") {
			t.Errorf("%s: %v, want an error naming -d", bad, err)
		}
	}
}

// TestParseCurlRejectsWhatCurlWould: ports out of range, headers without a name, methods that are
// not HTTP tokens are refused at load time, as curl itself would refuse or mangle them.
func TestParseCurlRejectsWhatCurlWould(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{"curl http://h:99999/", "port 99999"},
		{"curl http://h:65536/", "port 65536"},
		{"curl http://h:0/", "port 0"},
		{"curl -H 'no colon' http://h/", "header"},
		{"curl -H ': v' http://h/", "header"},
		{"curl -X 'GE T' http://h/", "method"},
		{"curl -X '' http://h/", "method"},
		{"curl -o", "needs a value"},
		{"curl http://\xf2/", "not a DNS name"},
		{"curl http://a..b/", "not a DNS name"},
		{"curl 'http://a b/'", "host name"},
	} {
		_, err := ParseCurl(c.cmd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.cmd, err, c.want)
		}
	}
	for _, ok := range []string{"curl http://h:65535/", "curl http://h:1/", "curl -H 'X-A: b' http://h/", "curl -H 'X-Empty;' http://h/", "curl http://10.0.0.1:8080/", "curl http://[::1]/", "curl http://my_host.example.com/"} {
		if _, err := ParseCurl(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
