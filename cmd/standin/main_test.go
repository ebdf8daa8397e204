package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type running struct {
	httpAddr, httpsAddr string
	stdout, stderr      *syncBuffer
	stop                func() error
}

func start(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{httpAddr: freeAddr(t), httpsAddr: freeAddr(t), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	args = append(args, "--http-addr", r.httpAddr, "--https-addr", r.httpsAddr)
	go func() { errc <- run(ctx, args, r.stdout, r.stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.httpsAddr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("standin exited: %v\n%s", err, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("standin did not listen on %s\n%s", r.httpsAddr, r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-errc:
			case <-time.After(10 * time.Second):
				t.Error("standin did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func curl(t *testing.T, addr, scheme, host, path, ca string) (string, string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", ca,
		"--resolve", host+":"+port+":127.0.0.1", "-w", "\n%{http_code}",
		scheme+"://"+host+":"+port+path).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s://%s%s: %v\n%s", scheme, host, path, err, out)
	}
	s := string(out)
	i := strings.LastIndex(s, "\n")
	return s[i+1:], s[:i]
}

func TestGenerateCertsServeAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	r := start(t, "--generate-certs", "--certs", dir)
	ca := filepath.Join(dir, "ca.crt")
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.stdout.String(), string(caPEM)) {
		t.Fatalf("stdout does not start with the CA:\n%s", r.stdout.String())
	}
	code, body := curl(t, r.httpsAddr, "https", "httpbin.org", "/anything", ca)
	if code != "200" || !strings.Contains(body, `"url": "https://httpbin.org:`) {
		t.Fatalf("https anything: %s %s", code, body)
	}
	if code, _ := curl(t, r.httpAddr, "http", "www.aliyun.com", "/", ca); code != "301" {
		t.Fatalf("http aliyun: %s", code)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	out := r.stdout.String()
	for _, want := range []string{"scheme=https proto=HTTP/2.0 method=GET path=/anything status=200", "scheme=http proto=HTTP/1.1 method=GET path=/ status=301"} {
		if !strings.Contains(out, want) {
			t.Errorf("request log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(r.stderr.String(), "shut down") {
		t.Errorf("stderr: %s", r.stderr.String())
	}

	// Load the same certificates, with a hosts file of our own.
	hostsFile := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.WriteFile(hostsFile, []byte("hosts:\n- name: httpbin.org\n  http: {status: 204}\n  https: {status: 200, body: custom}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = start(t, "--certs", dir, "--hosts", hostsFile)
	if code, body := curl(t, r.httpsAddr, "https", "httpbin.org", "/", ca); code != "200" || body != "custom" {
		t.Fatalf("custom host: %s %q", code, body)
	}
	if code, _ := curl(t, r.httpAddr, "http", "www.aliyun.com", "/", ca); code != "421" {
		t.Fatalf("host not in the custom file: %s", code)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// A host on another port listens where --addr says.
	if err := os.WriteFile(hostsFile, []byte("hosts:\n- name: httpbin.org\n  ports: [{port: 8080, protocol: http}, {port: 443, protocol: https}]\n  http: {status: 200, body: on-8080}\n  https: {status: 200}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alt := freeAddr(t)
	r = start(t, "--certs", dir, "--hosts", hostsFile, "--addr", "8080="+alt)
	if code, body := curl(t, alt, "http", "httpbin.org", "/", ca); code != "200" || body != "on-8080" {
		t.Fatalf("port 8080: %s %q", code, body)
	}
	if !strings.Contains(r.stderr.String(), "8080/http on "+alt) {
		t.Errorf("stderr does not say where port 8080 listens: %s", r.stderr.String())
	}
}

func TestFlagErrors(t *testing.T) {
	ctx := context.Background()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("hosts:\n- name: a.example\n  http: {status: 200}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "give --certs DIR or --generate-certs"},
		{[]string{"--hosts", bad, "--generate-certs"}, "hosts[0] (a.example).https: required"},
		{[]string{"--certs", t.TempDir()}, "no ca.crt"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--generate-certs", "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--dns-answer", "fd00::1"}, `--dns-answer "fd00::1": not an IPv4 address`},
	} {
		var out, errOut bytes.Buffer
		err := run(ctx, c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"--print-hosts"}, &out, &out); err != nil || !strings.Contains(out.String(), "name: developer.yahoo.com") {
		t.Errorf("--print-hosts: %v\n%s", err, out.String())
	}
}

func TestServesDNSWithDNSAnswer(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := l.LocalAddr().String()
	l.Close()
	start(t, "--generate-certs", "--dns-answer", "10.1.2.3", "--dns-addr", dnsAddr, "--dns-upstream", "127.0.0.1:1")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("httpbin.org."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	req, _ := b.Finish()
	var resp []byte
	buf := make([]byte, 512)
	for i := 0; i < 50 && resp == nil; i++ { // the DNS listener starts beside the HTTP ones
		c, err := net.Dial("udp", dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write(req); err == nil {
			if n, err := c.Read(buf); err == nil {
				resp = buf[:n]
			}
		}
		c.Close()
	}
	var p dnsmessage.Parser
	if _, err := p.Start(resp); err != nil {
		t.Fatalf("no DNS reply: %v", err)
	}
	_ = p.SkipAllQuestions()
	a, err := p.AllAnswers()
	if err != nil || len(a) != 1 || a[0].Body.(*dnsmessage.AResource).A != [4]byte{10, 1, 2, 3} {
		t.Errorf("A httpbin.org: %v %v, want 10.1.2.3", a, err)
	}
}
