package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
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
	for _, bad := range []string{"", "wget http://x", "curl", "curl -x proxy https://x", "curl ftp://x", "curl -I -X GET http://x", "curl 'http://x", "curl http://a http://b", "curl -X"} {
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
	f.Add("HTTP/1.1 301 Moved\r\nLocation: /b\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/2 200\r\nA: b\r\n\r\nHTTP/1.1 200 body"+Marker+`{"http_code":200,"exitcode":0,"num_redirects":1}`, "", 0)
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
		// A hop is a response of the chain: never a 1xx interim response, and never more than
		// curl says it received (num_redirects + 1), so a body is never read as a hop.
		for _, h := range obs.Hops {
			if h.Status >= 100 && h.Status < 200 {
				t.Fatalf("1xx %d read as a hop", h.Status)
			}
		}
		var wo struct {
			N *int `json:"num_redirects"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(stdout[strings.LastIndex(stdout, Marker)+len(Marker):])), &wo) == nil && wo.N != nil && *wo.N >= 0 && len(obs.Hops) > *wo.N+1 {
			t.Fatalf("%d hops, curl followed %d redirects", len(obs.Hops), *wo.N)
		}
	})
}

func FuzzParseCurl(f *testing.F) {
	f.Add("curl -I http://www.aliyun.com")
	f.Add(`curl -s -o /dev/null -w "%{http_code}\n" http://www.httpbin.org`)
	f.Add("time curl -sSIL -m 3 http://h/")
	f.Add("curl -sSLkXPOST -d a --resolve h:443:10.0.0.1 -D - https://h/")
	f.Add("curl --location --insecure --max-time 0.5 -sSo/dev/null http://h:8080/p?q")
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
		// What curl reads from the document's line and from the probe's arguments agree on every
		// flag that shapes the request: -L is kept, and so are -k, the document's --max-time
		// (which replaces the run's) and --resolve; with -L a named -X stays named.
		words, _ := splitArgs(cmd)
		if words[0] == "time" {
			words = words[1:]
		}
		doc, run := curlReads(words[1:]), curlReads(Args(r, Options{MaxTime: 7 * time.Second}))
		if doc.method != r.Method || run.method != r.Method {
			t.Fatalf("%q: curl reads method %s from it and %s from the probe's arguments, parsed %s", cmd, doc.method, run.method, r.Method)
		}
		if doc.follow != r.FollowRedirects || run.follow != r.FollowRedirects || doc.insecure != r.Insecure || run.insecure != r.Insecure {
			t.Fatalf("%q: -L/-k: document %+v, probe %+v, parsed follow=%v insecure=%v", cmd, doc, run, r.FollowRedirects, r.Insecure)
		}
		if want := cond(doc.maxTime != "", doc.maxTime, "7"); !sameSeconds(run.maxTime, want) {
			t.Fatalf("%q: curl would stop after %ss, the probe after %ss", cmd, want, run.maxTime)
		}
		if strings.Join(doc.resolve, " ") != strings.Join(run.resolve, " ") {
			t.Fatalf("%q: --resolve %q, the probe runs %q", cmd, doc.resolve, run.resolve)
		}
		if doc.follow && doc.namedX && !run.namedX {
			t.Fatalf("%q: -X named with -L, the probe drops it (curl would send another method after a redirect)", cmd)
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

// TestParseCurlDocumentForms: the forms the egress documents write, each read as curl reads it.
func TestParseCurlDocumentForms(t *testing.T) {
	for _, c := range []struct {
		cmd                       string
		method                    string
		follow, insecure          bool
		maxTime                   time.Duration
		resolve                   []string
		explicitMethodKeptWithRun bool
	}{
		{cmd: "curl -sSI http://h/", method: "HEAD"},
		{cmd: "curl -sSL http://h/", method: "GET", follow: true},
		{cmd: "curl -sv http://h/", method: "GET"},
		{cmd: "curl -sSIL http://h/", method: "HEAD", follow: true},
		{cmd: "curl -L -D - http://h/", method: "GET", follow: true},
		{cmd: "curl -sSD- -o /dev/null http://h/", method: "GET"},
		{cmd: "curl --location --dump-header - http://h/", method: "GET", follow: true},
		{cmd: "curl --max-time 5 http://h/", method: "GET", maxTime: 5 * time.Second},
		{cmd: "curl -m 0.5 http://h/", method: "GET", maxTime: 500 * time.Millisecond},
		{cmd: "curl -sSm3 http://h/", method: "GET", maxTime: 3 * time.Second},
		{cmd: "curl -m 2 -m 4 http://h/", method: "GET", maxTime: 4 * time.Second}, // curl: the last wins
		{cmd: "curl -k https://h/", method: "GET", insecure: true},
		{cmd: "curl --insecure -sS https://h/", method: "GET", insecure: true},
		{cmd: "curl -sSk https://h/", method: "GET", insecure: true},
		{cmd: "curl --resolve h:443:10.0.0.1 https://h/", method: "GET", resolve: []string{"h:443:10.0.0.1"}},
		{cmd: "curl --resolve h:80:10.0.0.1,[::1] http://h/", method: "GET", resolve: []string{"h:80:10.0.0.1,[::1]"}},
		{cmd: "time curl -sS -m 10 http://h/", method: "GET", maxTime: 10 * time.Second},
		{cmd: "curl -XPOST http://h/", method: "POST"},
		{cmd: "curl -sSLX POST -d a http://h/", method: "POST", follow: true, explicitMethodKeptWithRun: true},
	} {
		r, err := ParseCurl(c.cmd)
		if err != nil {
			t.Errorf("%s: %v", c.cmd, err)
			continue
		}
		if r.Method != c.method || r.FollowRedirects != c.follow || r.Insecure != c.insecure || r.MaxTime != c.maxTime ||
			strings.Join(r.Resolve, " ") != strings.Join(c.resolve, " ") || r.Host != "h" {
			t.Errorf("%s: parsed %+v", c.cmd, r)
		}
		args := strings.Join(Args(r, Options{MaxTime: 10 * time.Second}), " ")
		if c.explicitMethodKeptWithRun && !strings.Contains(args, "-X POST") {
			t.Errorf("%s: runs %s: -X POST dropped, so curl would turn the POST into a GET after a 301", c.cmd, args)
		}
	}
	// The document's --max-time replaces the run's bound; without one the run's bound applies.
	if a := strings.Join(Args(mustParse(t, "curl -m 2 http://h/"), Options{MaxTime: 10 * time.Second, ConnectTimeout: time.Second}), " "); !strings.Contains(a, "--max-time 2 ") || strings.Contains(a, "--max-time 10") || strings.Contains(a, "--connect-timeout") {
		t.Errorf("-m 2 runs as %s", a)
	}
	if a := strings.Join(Args(mustParse(t, "curl http://h/"), Options{MaxTime: 10 * time.Second}), " "); !strings.Contains(a, "--max-time 10 ") {
		t.Errorf("no -m runs as %s", a)
	}
}

// TestParseCurlRefusesNamingTheFlag: every form the harness does not read is an error naming the
// flag as the command wrote it.
func TestParseCurlRefusesNamingTheFlag(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{"curl -sSx proxy http://h/", "flag -x (in -sSx) is not supported"},
		{"curl -x proxy http://h/", "flag -x is not supported"},
		{"curl --proxy p http://h/", "flag --proxy is not supported"},
		{"curl --no-location http://h/", "flag --no-location is not supported"},
		{"curl --location-trusted http://h/", "flag --location-trusted is not supported"},
		{"curl -E cert.pem https://h/", "flag -E is not supported"},
		{"curl --max-time=3 http://h/", "flag --max-time=3 is not supported"},
		{"curl - http://h/", "flag - is not supported"},
		{"curl -m http://h/", `-m "http://h/": want seconds`},
		{"curl -m 0 http://h/", `-m "0": must be above 0`},
		{"curl --max-time -1 http://h/", `--max-time "-1": want seconds`},
		{"curl --max-time 1e3 http://h/", `--max-time "1e3": want seconds`},
		{"curl -m 301 http://h/", `-m "301": at most 5m0s`},
		{"curl -m 0.0001 http://h/", `-m "0.0001": want seconds`},
		{"curl -sSm", "-m (in -sSm) needs a value"},
		{"curl http://h/ --resolve", "--resolve needs a value"},
		{"curl --resolve h:80 http://h/", `--resolve "h:80": want HOST:PORT:ADDRESS`},
		{"curl --resolve h:99999:10.0.0.1 http://h/", "the port must be 1..65535"},
		{"curl --resolve '*:80:10.0.0.1' http://h/", "the host must be a DNS name"},
		{"curl --resolve +h:80:10.0.0.1 http://h/", "the host must be a DNS name"},
		{"curl --resolve h:80:nothost http://h/", `"nothost" is not an IPv4 address`},
		{"curl --resolve h:80:::1 http://h/", `is not an IPv4 address (IPv6 goes in brackets)`},
		{"curl --resolve h:80:[10.0.0.1] http://h/", `"10.0.0.1" is not an IPv6 address`},
		{"time -p curl http://h/", "must start with curl"},
		{"time", "must start with curl"},
		{"curl -sSXPOST", "no URL"},
	} {
		_, err := ParseCurl(c.cmd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.cmd, err, c.want)
		}
	}
}

// TestRealCurlDocumentForms runs the real curl binary, with the probe's arguments for the
// documents' forms, against loopback servers.
func TestRealCurlDocumentForms(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required: apt-get install curl")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/r1":
			w.Header().Set("Location", "/r2")
			w.Header().Set("Server", "envoy")
			w.WriteHeader(301)
			io.WriteString(w, "the body of a 301, which curl -L does not print")
		case "/r2":
			w.Header().Set("Location", "/final")
			w.WriteHeader(302)
		case "/final":
			w.Header().Set("X-Final", "yes")
			io.WriteString(w, r.Method+" "+r.Host)
		case "/httpbody":
			// A final body that reads like a status line: num_redirects says where the headers end.
			io.WriteString(w, "HTTP/1.1 200 OK\r\n\r\nnot a response")
		case "/slow":
			time.Sleep(3 * time.Second)
			w.WriteHeader(504)
		default:
			w.WriteHeader(404)
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	o := Options{ConnectTimeout: 2 * time.Second, MaxTime: 5 * time.Second}

	// -L: every response of the chain is a hop, with its status and headers; the result, the
	// headers and the body are the final response's.
	for _, cmd := range []string{"curl -sSL " + srv.URL + "/r1", "curl -L -D - " + srv.URL + "/r1", "time curl -sSIL " + srv.URL + "/r1"} {
		obs := runCurl(t, mustParse(t, cmd), o)
		if len(obs.Hops) != 3 || obs.Hops[0].Status != 301 || obs.Hops[0].Headers["location"] != "/r2" || obs.Hops[0].Headers["server"] != "envoy" ||
			obs.Hops[1].Status != 302 || obs.Hops[2].Status != 200 || obs.Hops[2].Headers["x-final"] != "yes" || obs.Hops[0].HTTPVersion != "1.1" {
			t.Errorf("%s: hops %+v", cmd, obs.Hops)
			continue
		}
		exp := &outcome.Expected{Result: outcome.Results{{Kind: outcome.KindStatus, Status: 200}}, Headers: map[string]string{"x-final": "yes"},
			First: &outcome.HopExpected{Status: 301, Headers: map[string]string{"Location": "/r2"}},
			Hops:  []outcome.HopExpected{{Status: 301}, {Status: 302, Headers: map[string]string{"location": "/final"}}, {Status: 200}}}
		if err := outcome.Match(exp, obs); err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
		if mustParse(t, cmd).Method != "HEAD" && obs.Body != "GET "+strings.TrimPrefix(srv.URL, "http://") {
			t.Errorf("%s: body %q, want the final response's only", cmd, obs.Body)
		}
	}
	// Without -L the 301 is the one and only response.
	obs := runCurl(t, mustParse(t, "curl -sS "+srv.URL+"/r1"), o)
	if obs.HTTPCode != 301 || len(obs.Hops) != 1 || obs.Hops[0].Status != 301 {
		t.Errorf("no -L: %d hops %+v", obs.HTTPCode, obs.Hops)
	}
	// -X POST with -L stays a POST on every hop, as curl keeps a named method.
	obs = runCurl(t, mustParse(t, "curl -sSL -X POST -d a "+srv.URL+"/r1"), o)
	if !strings.HasPrefix(obs.Body, "POST ") {
		t.Errorf("-L -X POST: the final hop got %q", obs.Body)
	}
	obs = runCurl(t, mustParse(t, "curl -sSL -d a "+srv.URL+"/r1"), o)
	if !strings.HasPrefix(obs.Body, "GET ") {
		t.Errorf("-L -d: curl turns the POST into a GET after a 301, the final hop got %q", obs.Body)
	}
	obs = runCurl(t, mustParse(t, "curl -sSL "+srv.URL+"/httpbody"), o)
	if len(obs.Hops) != 1 || obs.Body != "HTTP/1.1 200 OK\r\n\r\nnot a response" {
		t.Errorf("a body that starts with HTTP/: hops %+v body %q", obs.Hops, obs.Body)
	}

	// A redirect followed to a host that never answers: the outcome is the timeout of the
	// request curl ended on (curl still reports the 301's %{http_code}), the 301 its first hop.
	silent := listen(t, func(c net.Conn) { time.Sleep(3 * time.Second); c.Close() })
	toSilent := httptest.NewServer(http.RedirectHandler("http://"+silent+"/", 301))
	defer toSilent.Close()
	obs = runCurl(t, mustParse(t, "curl -sSL -m 1 "+toSilent.URL), o)
	if err := outcome.Match(&outcome.Expected{Result: outcome.Results{{Kind: outcome.KindTimeout}}, First: &outcome.HopExpected{Status: 301}}, obs); err != nil || len(obs.Hops) != 1 {
		t.Errorf("redirect to a silent host: %v (%+v)", err, obs)
	}

	// The document's --max-time, not the run's (5 s), ends a 3 s wait: exit 28, in about 1 s.
	obs = runCurl(t, mustParse(t, "curl -sS --max-time 1 "+srv.URL+"/slow"), o)
	if obs.ExitCode != 28 || obs.Duration < 900*time.Millisecond || obs.Duration > 2500*time.Millisecond {
		t.Errorf("--max-time 1: exit %d after %s, want 28 after about 1s", obs.ExitCode, obs.Duration)
	}
	exit28 := 28
	if err := outcome.Match(&outcome.Expected{Result: outcome.Results{{Kind: outcome.KindTimeout}}, ExitCode: &exit28,
		Elapsed: &outcome.Elapsed{Min: 900 * time.Millisecond, Max: 2500 * time.Millisecond}}, obs); err != nil {
		t.Errorf("--max-time 1: %v", err)
	}
	// The 504 "after ~3 s" within the run's bound, checked with elapsed.
	obs = runCurl(t, mustParse(t, "curl -sSm4 "+srv.URL+"/slow"), o)
	if err := outcome.Match(&outcome.Expected{Result: outcome.Results{{Kind: outcome.KindStatus, Status: 504}},
		Elapsed: &outcome.Elapsed{Min: 2 * time.Second, Max: 3900 * time.Millisecond}}, obs); err != nil {
		t.Errorf("504 after 3s: %v", err)
	}
	if err := outcome.Match(&outcome.Expected{Result: outcome.Results{{Kind: outcome.KindStatus, Status: 504}},
		Elapsed: &outcome.Elapsed{Max: time.Second}}, obs); err == nil {
		t.Errorf("a 504 after %s matched elapsed max 1s", obs.Duration)
	}

	// -k: a certificate curl cannot verify is exit 60 without it and accepted with it.
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake curl aborts for exit 60
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	if obs := runCurl(t, mustParse(t, "curl -sS "+tlsSrv.URL+"/final"), o); obs.ExitCode != 60 {
		t.Errorf("unverifiable certificate without -k: %s, want exit 60", obs.Summary())
	}
	for _, cmd := range []string{"curl -k " + tlsSrv.URL + "/final", "curl -sSkL " + tlsSrv.URL + "/r1", "curl --insecure -sS " + tlsSrv.URL + "/final"} {
		if obs := runCurl(t, mustParse(t, cmd), o); obs.ExitCode != 0 || obs.HTTPCode != 200 {
			t.Errorf("%s: %s, want 200", cmd, obs.Summary())
		}
	}

	// --resolve: a name no DNS knows reaches the loopback server, and the Host is the name.
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	obs = runCurl(t, mustParse(t, "curl -sS --resolve egress.invalid:"+port+":127.0.0.1 http://egress.invalid:"+port+"/final"), o)
	if obs.HTTPCode != 200 || obs.Body != "GET egress.invalid:"+port {
		t.Errorf("--resolve: %s body %q", obs.Summary(), obs.Body)
	}
	if r := mustParse(t, "curl --resolve egress.invalid:"+port+":127.0.0.1 http://egress.invalid:"+port+"/"); !r.ResolvesTarget() {
		t.Errorf("--resolve for the URL's host and port does not resolve its target")
	}
	if r := mustParse(t, "curl --resolve egress.invalid:1:127.0.0.1 http://egress.invalid:"+port+"/"); r.ResolvesTarget() {
		t.Errorf("--resolve for another port resolves the target; curl would not use it")
	}
}

// curlView is what curl reads from an argument list, for the flags that shape the request.
type curlView struct {
	method, maxTime  string
	follow, insecure bool
	namedX           bool
	resolve          []string
}

// curlReads reads an argument list by curl's own rules, independently of ParseCurl: short flags
// cluster, a short flag taking a value takes the rest of its word or the next word, the last
// --max-time wins.
func curlReads(args []string) curlView {
	var v curlView
	var norm []string // the list with every short flag and value split out, for methodCurlSends
	valueLong := map[string]bool{"--output": true, "--write-out": true, "--request": true, "--header": true, "--data": true,
		"--data-raw": true, "--data-binary": true, "--dump-header": true, "--max-time": true, "--resolve": true,
		"--local-port": true, "--connect-timeout": true, "--cacert": true}
	longOf := map[byte]string{'o': "--output", 'w': "--write-out", 'X': "--request", 'H': "--header", 'd': "--data",
		'D': "--dump-header", 'm': "--max-time", 'I': "--head", 'L': "--location", 'k': "--insecure"}
	apply := func(name, val string) {
		switch name {
		case "--location":
			v.follow = true
		case "--insecure":
			v.insecure = true
		case "--max-time":
			v.maxTime = val
		case "--resolve":
			v.resolve = append(v.resolve, val)
		case "--request":
			v.namedX = true
		}
		// Only what decides the method goes on, so a value never reads as a flag.
		switch {
		case name == "--request" || strings.HasPrefix(name, "--data"):
			norm = append(norm, name, val)
		case !valueLong[name]:
			norm = append(norm, name)
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--"):
			val := ""
			if valueLong[a] && i+1 < len(args) {
				i++
				val = args[i]
			}
			apply(a, val)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				name := longOf[a[j]]
				if name == "" {
					continue // -s -S -v -i: output only
				}
				if valueLong[name] {
					val := a[j+1:]
					if val == "" && i+1 < len(args) {
						i++
						val = args[i]
					}
					apply(name, val)
					break
				}
				apply(name, "")
			}
		}
	}
	v.method = methodCurlSends(norm)
	return v
}

func cond(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func sameSeconds(a, b string) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

// TestRedirectAcrossPortsWithLocalPorts, with the real curl: -L to another port opens a second
// connection while the first is still open, so one --local-port fails (exit 45, address in use)
// and a range of LocalPorts succeeds.
func TestRedirectAcrossPortsWithLocalPorts(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "landed") }))
	defer target.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer first.Close()
	req := mustParse(t, "curl -sSL "+first.URL+"/politics")
	port := 30000 + os.Getpid()%20000
	one := runCurl(t, req, Options{MaxTime: 5 * time.Second, LocalPort: port})
	if one.ExitCode != 45 {
		t.Errorf("one --local-port: exit %d (%s); want 45: the first connection still holds the port", one.ExitCode, one.Summary())
	}
	got := runCurl(t, req, Options{MaxTime: 5 * time.Second, LocalPort: port + 100, LocalPorts: 8})
	if got.ExitCode != 0 || got.HTTPCode != 200 || !strings.Contains(got.Body, "landed") || len(got.Hops) != 2 || got.Hops[0].Status != 301 {
		t.Fatalf("with 8 local ports: exit %d, %s, hops %+v", got.ExitCode, got.Summary(), got.Hops)
	}
}
