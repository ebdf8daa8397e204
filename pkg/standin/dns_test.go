package standin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeUpstream answers every A query with 192.0.2.99 (other.example. is NXDOMAIN) and records
// the transport each query came in on.
type fakeUpstream struct {
	mu   sync.Mutex
	seen []string // "udp A name." / "tcp A name."
	addr string
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		f.mu.Lock()
		f.seen = append(f.seen, proto(w)+" "+questions(r))
		f.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Name == "other.example." {
			m.Rcode = dns.RcodeNameError
		} else if q.Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP("192.0.2.99").To4()}}
		}
		_ = w.WriteMsg(m)
	})
	u := &dns.Server{PacketConn: pc, Handler: h}
	tc := &dns.Server{Listener: l, Handler: h}
	go func() { _ = u.ActivateAndServe() }()
	go func() { _ = tc.ActivateAndServe() }()
	t.Cleanup(func() { _ = u.Shutdown(); _ = tc.Shutdown() })
	return f
}

func (f *fakeUpstream) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func startDNS(t *testing.T, upstream string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &DNSServer{Hosts: []string{"www.aliyun.com", "httpbin.org"}, Answer: net.ParseIP("10.96.0.42"), Upstream: upstream, Timeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

func query(t *testing.T, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	var r *dns.Msg
	var err error
	for i := 0; i < 20; i++ { // the servers start in goroutines
		if r, _, err = c.Exchange(m, server); err == nil {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s %s: %v", network, dns.TypeToString[qtype], name, err)
	return nil
}

func aRecords(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func TestDNSServerAnswersCatalogHostsAndForwardsTheRest(t *testing.T) {
	up := startFakeUpstream(t)
	addr := startDNS(t, up.addr)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := query(t, network, addr, "WWW.Aliyun.com.", dns.TypeA)
			if got := aRecords(r); r.Rcode != dns.RcodeSuccess || len(got) != 1 || got[0] != "10.96.0.42" {
				t.Errorf("A www.aliyun.com: rcode %s, answers %v, want the stand-in's 10.96.0.42", dns.RcodeToString[r.Rcode], got)
			}
			r = query(t, network, addr, "httpbin.org.", dns.TypeAAAA)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
				t.Errorf("AAAA httpbin.org: rcode %s, %d answers, want NOERROR with none (NODATA)", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			r = query(t, network, addr, "kubernetes.default.svc.cluster.local.", dns.TypeA)
			if got := aRecords(r); len(got) != 1 || got[0] != "192.0.2.99" {
				t.Errorf("A of another name: answers %v, want the upstream's 192.0.2.99", got)
			}
			r = query(t, network, addr, "other.example.", dns.TypeA)
			if r.Rcode != dns.RcodeNameError {
				t.Errorf("upstream NXDOMAIN came back as %s", dns.RcodeToString[r.Rcode])
			}
			// A name that only ends like a catalog host is not one.
			r = query(t, network, addr, "www.aliyun.com.demo.svc.cluster.local.", dns.TypeA)
			if got := aRecords(r); len(got) != 1 || got[0] != "192.0.2.99" {
				t.Errorf("search-list expansion of a catalog host: answers %v, want it forwarded", got)
			}
		})
	}
	want := map[string]bool{
		"udp A kubernetes.default.svc.cluster.local.": false, "tcp A kubernetes.default.svc.cluster.local.": false,
		"udp A other.example.": false, "tcp A other.example.": false,
	}
	for _, q := range up.queries() {
		if _, ok := want[q]; ok {
			want[q] = true
		}
		if q == "udp A www.aliyun.com." || q == "tcp A www.aliyun.com." || q == "udp AAAA httpbin.org." {
			t.Errorf("a catalog host was forwarded: %s", q)
		}
	}
	for q, ok := range want {
		if !ok {
			t.Errorf("upstream never saw %q (forwarded over the client's transport); saw %v", q, up.queries())
		}
	}
}

func TestDNSServerUpstreamDownIsServfail(t *testing.T) {
	// A UDP port nothing answers on: the forward times out.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	defer pc.Close()
	addr := startDNS(t, dead)
	r := query(t, "udp", addr, "example.org.", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	// The catalog's hosts do not depend on the upstream.
	if got := aRecords(query(t, "udp", addr, "www.aliyun.com.", dns.TypeA)); len(got) != 1 {
		t.Errorf("catalog host with the upstream down: %v", got)
	}
}

func TestDNSServerRefusesBadConfig(t *testing.T) {
	for _, s := range []*DNSServer{
		{Answer: net.ParseIP("fd00::1"), Upstream: "127.0.0.1:53"},
		{Answer: net.ParseIP("10.0.0.1")},
	} {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		if err := s.Serve(context.Background(), pc, l); err == nil {
			t.Errorf("Serve(%+v) = nil, want an error", s)
		}
	}
}

func TestUpstreamFromResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("search a.svc.cluster.local svc.cluster.local\n# nameserver 1.1.1.1\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := UpstreamFromResolvConf(p)
	if err != nil || got != "10.96.0.10:53" {
		t.Errorf("got %q, %v; want 10.96.0.10:53", got, err)
	}
	if err := os.WriteFile(p, []byte("search x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := UpstreamFromResolvConf(p); err == nil {
		t.Error("no nameserver line: want an error")
	}
}
