package standin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/pki"
)

// These tests run the Server on loopback (random ports) and hit it with the real curl binary,
// using --resolve so each external host name reaches the stand-in, and --cacert with the run's CA.

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type standinUnderTest struct {
	httpPort, httpsPort int
	// ports maps each declared port to the loopback port serving it.
	ports  map[int]int
	caFile string
	certs  *pki.Bundle
	log    *syncBuffer
}

func startStandin(t *testing.T) *standinUnderTest {
	t.Helper()
	return startStandinWith(t, builtinHosts(t))
}

// startStandinWith serves hosts on loopback, one random port for each declared port
// (standinUnderTest.ports maps them).
func startStandinWith(t *testing.T, hosts []Host) *standinUnderTest {
	t.Helper()
	certs, err := pki.Generate(HostNames(hosts), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certs.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	listeners := map[int]net.Listener{}
	ports := map[int]int{}
	for _, p := range ServerPorts(hosts) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[p.Port] = l
		ports[p.Port] = l.Addr().(*net.TCPAddr).Port
	}
	logBuf := &syncBuffer{}
	// Handshake errors (the tests that make curl refuse the certificate) go to errLog.
	errLog := &syncBuffer{}
	srv := &Server{Hosts: hosts, Certs: certs, Log: logBuf, ErrorLog: log.New(errLog, "", 0)}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, listeners) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return &standinUnderTest{
		httpPort:  ports[80],
		httpsPort: ports[443],
		ports:     ports,
		caFile:    filepath.Join(dir, pki.CAFile),
		certs:     certs,
		log:       logBuf,
	}
}

type curlResult struct {
	exit        int
	status      int
	httpVersion string
	statusLine  string
	header      http.Header
	body        string
	stderr      string
}

func curlBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/curl"); err == nil {
		return "/usr/bin/curl"
	}
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("these tests need the real curl binary (apt-get install curl)")
	}
	return p
}

// curl requests scheme://host/path from the stand-in. withCA adds --cacert; extra are more curl
// arguments (method, headers, data, --http1.1).
func (s *standinUnderTest) curl(t *testing.T, scheme, host, path string, withCA bool, extra ...string) curlResult {
	t.Helper()
	port := s.httpPort
	if scheme == "https" {
		port = s.httpsPort
	}
	args := []string{"--resolve", fmt.Sprintf("%s:%d:127.0.0.1", host, port)}
	if withCA {
		args = append(args, "--cacert", s.caFile)
	}
	args = append(args, extra...)
	return s.curlURL(t, fmt.Sprintf("%s://%s:%d%s", scheme, host, port, path), args...)
}

// curlURL runs curl on url with args, capturing status, HTTP version, headers and body.
func (s *standinUnderTest) curlURL(t *testing.T, url string, extra ...string) curlResult {
	t.Helper()
	dir := t.TempDir()
	bodyFile, headFile := filepath.Join(dir, "body"), filepath.Join(dir, "head")
	args := []string{
		"-sS", "--max-time", "10",
		"-o", bodyFile, "-D", headFile,
		"-w", "%{http_code} %{http_version}",
	}
	args = append(args, extra...)
	args = append(args, url)
	cmd := exec.Command(curlBinary(t), args...)
	// No proxy and no ambient CA settings may leak in from the environment.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := curlResult{stderr: stderr.String(), header: http.Header{}}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run curl: %v", err)
	}
	if f := strings.Fields(stdout.String()); len(f) == 2 {
		res.status, _ = strconv.Atoi(f[0])
		res.httpVersion = f[1]
	}
	body, _ := os.ReadFile(bodyFile)
	res.body = string(body)
	if head, err := os.ReadFile(headFile); err == nil && len(head) > 0 {
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
		res.statusLine, _ = tp.ReadLine()
		mh, _ := tp.ReadMIMEHeader()
		res.header = http.Header(mh)
	}
	return res
}

func (r curlResult) String() string {
	return fmt.Sprintf("exit=%d status=%d http=%s line=%q header=%v stderr=%q body=%.300q",
		r.exit, r.status, r.httpVersion, r.statusLine, r.header, r.stderr, r.body)
}

func TestCurlEveryHostBothSchemes(t *testing.T) {
	s := startStandin(t)
	for _, h := range builtinHosts(t) {
		for _, scheme := range []string{"http", "https"} {
			b := h.For(scheme)
			wantStatus := b.Status
			if b.HTTPBin {
				wantStatus = 200 // httpbin's index page
			}
			r := s.curl(t, scheme, h.Name, "/", true)
			if r.exit != 0 || r.status != wantStatus {
				t.Errorf("%s://%s/: want %d, got %s", scheme, h.Name, wantStatus, r)
				continue
			}
			if got := r.header.Get(HeaderStandin); got != h.Name {
				t.Errorf("%s://%s/: %s = %q", scheme, h.Name, HeaderStandin, got)
			}
			if !b.HTTPBin {
				for k, v := range b.Headers {
					if got := r.header.Get(k); got != v {
						t.Errorf("%s://%s/: header %s = %q, want %q", scheme, h.Name, k, got, v)
					}
				}
				if r.body != b.Body {
					t.Errorf("%s://%s/: body %q, want %q", scheme, h.Name, r.body, b.Body)
				}
			}
			// Over TLS curl offers h2 and gets it; plain HTTP stays HTTP/1.1.
			wantVersion := "1.1"
			if scheme == "https" {
				wantVersion = "2"
			}
			if r.httpVersion != wantVersion {
				t.Errorf("%s://%s/: HTTP version %q, want %q", scheme, h.Name, r.httpVersion, wantVersion)
			}
			// The seeds use curl -I: HEAD must answer the same status (with -I curl writes the
			// headers where the body would go, so the body is not compared).
			if hr := s.curl(t, scheme, h.Name, "/", true, "-I"); hr.exit != 0 || hr.status != wantStatus {
				t.Errorf("curl -I %s://%s: %s", scheme, h.Name, hr)
			}
		}
	}
}

func TestCurlAliyunRedirect(t *testing.T) {
	s := startStandin(t)
	r := s.curl(t, "http", "www.aliyun.com", "/", true, "-I")
	if r.status != 301 || r.header.Get("Location") != "https://www.aliyun.com/" {
		t.Fatalf("curl -I http://www.aliyun.com: %s", r)
	}
	if !strings.HasPrefix(r.statusLine, "HTTP/1.1 301") {
		t.Errorf("status line %q", r.statusLine)
	}
	r = s.curl(t, "https", "www.aliyun.com", "/", true, "-I")
	if r.status != 200 || r.header.Get("Location") != "" {
		t.Fatalf("curl -I https://www.aliyun.com: %s", r)
	}
}

func TestCurlHTTPBin(t *testing.T) {
	s := startStandin(t)
	for _, host := range []string{"httpbin.org", "www.httpbin.org"} {
		for _, scheme := range []string{"http", "https"} {
			t.Run(scheme+"://"+host, func(t *testing.T) {
				// /get
				r := s.curl(t, scheme, host, "/get?x=1", true)
				var get struct {
					Args map[string]string `json:"args"`
					URL  string            `json:"url"`
				}
				// httpbin.org's shape: one string per argument and header.
				if r.status != 200 || json.Unmarshal([]byte(r.body), &get) != nil || get.Args["x"] != "1" {
					t.Errorf("/get: %s", r)
				}
				if want := fmt.Sprintf("%s://%s:%d/get?x=1", scheme, host, s.port(scheme)); get.URL != want {
					t.Errorf("/get url %q, want %q", get.URL, want)
				}
				// /post
				r = s.curl(t, scheme, host, "/post", true, "-X", "POST", "-d", "a=b")
				var post struct {
					Form   map[string]string `json:"form"`
					Method string            `json:"method"`
				}
				if r.status != 200 || json.Unmarshal([]byte(r.body), &post) != nil || post.Form["a"] != "b" || post.Method != "POST" {
					t.Errorf("/post: %s", r)
				}
				// GET /post is not allowed
				if r := s.curl(t, scheme, host, "/post", true); r.status != 405 {
					t.Errorf("GET /post: %s", r)
				}
				// /anything: the scheme the server received, whatever X-Forwarded-Proto says.
				lie := map[string]string{"http": "https", "https": "http"}[scheme]
				r = s.curl(t, scheme, host, "/anything", true, "-H", "X-Forwarded-Proto: "+lie)
				want := fmt.Sprintf(`"url": "%s://%s:%d/anything"`, scheme, host, s.port(scheme))
				if r.status != 200 || !strings.Contains(r.body, want) {
					t.Errorf("/anything: want %s in %s", want, r)
				}
				// /status/418
				if r := s.curl(t, scheme, host, "/status/418", true); r.exit != 0 || r.status != 418 {
					t.Errorf("/status/418: %s", r)
				}
				// /headers echoes what curl sent
				r = s.curl(t, scheme, host, "/headers?a=1&a=2", true, "-H", "X-Egressconf-Test: yes")
				var hs struct {
					Headers map[string]string `json:"headers"`
				}
				if r.status != 200 || json.Unmarshal([]byte(r.body), &hs) != nil || hs.Headers["X-Egressconf-Test"] != "yes" ||
					!strings.HasPrefix(hs.Headers["User-Agent"], "curl/") || !strings.Contains(r.body, `"X-Egressconf-Test": "yes"`) {
					t.Errorf("/headers: %s", r)
				}
			})
		}
	}
}

// TestCurlAnythingDefaultPorts checks the exact text the documents show ("url":
// "https://httpbin.org/anything"), which needs the default ports in the URL: curl then sends
// Host without a port, as it does in the cluster.
func TestCurlAnythingDefaultPorts(t *testing.T) {
	s := startStandin(t)
	for _, scheme := range []string{"http", "https"} {
		r := s.curl(t, scheme, "httpbin.org", "/anything", true,
			"-H", "Host: httpbin.org", "-H", "X-Forwarded-Proto: bogus")
		want := fmt.Sprintf(`"url": "%s://httpbin.org/anything"`, scheme)
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("%s: want %s in %s", scheme, want, r)
		}
	}
}

func (s *standinUnderTest) port(scheme string) int {
	if scheme == "https" {
		return s.httpsPort
	}
	return s.httpPort
}

func TestCurlTLSVerification(t *testing.T) {
	s := startStandin(t)
	for _, host := range HostNames(builtinHosts(t)) {
		// Without the run's CA, curl cannot authenticate the stand-in: exit 60.
		if r := s.curl(t, "https", host, "/", false); r.exit != 60 {
			t.Errorf("%s without --cacert: want exit 60, got %s", host, r)
		}
		if r := s.curl(t, "https", host, "/", true); r.exit != 0 {
			t.Errorf("%s with --cacert: %s", host, r)
		}
	}
	// Another run's CA does not verify this run's leaves either.
	other, err := pki.Generate([]string{"httpbin.org"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(otherCA, other.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.curl(t, "https", "httpbin.org", "/", false, "--cacert", otherCA); r.exit != 60 {
		t.Errorf("with another run's CA: want exit 60, got %s", r)
	}
	// A name the stand-in has no certificate for fails the handshake (curl exit 35).
	if r := s.curl(t, "https", "example.com", "/", true); r.exit != 35 {
		t.Errorf("unknown SNI: want exit 35, got %s", r)
	}
	// curl checks the SAN: a server presenting www.aliyun.com's leaf for httpbin.org is refused
	// (exit 60), though the leaf chains to the CA curl trusts.
	aliyun, _ := s.certs.Leaf("www.aliyun.com")
	wrong := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	wrong.TLS = &tls.Config{Certificates: []tls.Certificate{aliyun.TLS}}
	wrong.StartTLS()
	defer wrong.Close()
	wrongPort := wrong.Listener.Addr().(*net.TCPAddr).Port
	r := s.curlURL(t, fmt.Sprintf("https://httpbin.org:%d/", wrongPort), "--resolve", fmt.Sprintf("httpbin.org:%d:127.0.0.1", wrongPort), "--cacert", s.caFile)
	if r.exit != 60 || !strings.Contains(r.stderr, "httpbin.org") {
		t.Errorf("SAN mismatch: want exit 60, got %s", r)
	}
}

func TestCurlHTTPVersions(t *testing.T) {
	s := startStandin(t)
	for _, host := range []string{"developers.google.com", "httpbin.org"} {
		if r := s.curl(t, "https", host, "/", true); r.httpVersion != "2" || !strings.HasPrefix(r.statusLine, "HTTP/2 200") {
			t.Errorf("%s default: want HTTP/2, got %s", host, r)
		}
		if r := s.curl(t, "https", host, "/", true, "--http1.1"); r.httpVersion != "1.1" || r.status != 200 {
			t.Errorf("%s --http1.1: want HTTP/1.1, got %s", host, r)
		}
		if r := s.curl(t, "http", host, "/", true); r.httpVersion != "1.1" {
			t.Errorf("%s plain: want HTTP/1.1, got %s", host, r)
		}
	}
}

func TestCurlUnknownHostAndLog(t *testing.T) {
	s := startStandin(t)
	r := s.curl(t, "http", "example.com", "/x", true)
	if r.status != 421 || !strings.Contains(r.body, `no host "example.com"`) {
		t.Fatalf("unknown host: %s", r)
	}
	s.curl(t, "https", "www.aliyun.com", "/path?q=1", true, "-X", "POST")
	// One line per request: host, scheme, method, path, status.
	deadline := time.Now().Add(5 * time.Second)
	for {
		logged := s.log.String()
		if strings.Contains(logged, "host=example.com:") && strings.Contains(logged, "scheme=https") {
			lines := strings.Split(strings.TrimSpace(logged), "\n")
			if len(lines) != 2 {
				t.Fatalf("want 2 log lines, got:\n%s", logged)
			}
			for _, want := range []string{"scheme=http ", "method=GET", "path=/x", "status=421"} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("line %q lacks %q", lines[0], want)
				}
			}
			for _, want := range []string{"host=www.aliyun.com:", "scheme=https", "proto=HTTP/2.0", "method=POST", "path=/path?q=1", "status=200", "sni=www.aliyun.com"} {
				if !strings.Contains(lines[1], want) {
					t.Errorf("line %q lacks %q", lines[1], want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines missing:\n%s", logged)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListenAndServeStopsOnCancel(t *testing.T) {
	hosts := builtinHosts(t)
	certs, err := pki.Generate(HostNames(hosts), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- (&Server{Hosts: hosts, Certs: certs, Addrs: map[int]string{80: "127.0.0.1:0", 443: "127.0.0.1:0"}}).ListenAndServe(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not stop")
	}
	// HTTPS without certificates is refused up front.
	err = (&Server{Hosts: hosts, Addrs: map[int]string{80: "-", 443: "127.0.0.1:0"}}).ListenAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificates") {
		t.Fatalf("no certs: %v", err)
	}
	// A port already in use is an error naming the listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = (&Server{Hosts: hosts, Certs: certs, Addrs: map[int]string{80: l.Addr().String(), 443: "-"}}).ListenAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen for port 80 (http) on "+l.Addr().String()) {
		t.Fatalf("busy port: %v", err)
	}
}
