package standin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeUpstream answers every A query with 192.0.2.99 (other.example. is NXDOMAIN) over UDP and
// TCP, and records the transport and question of each query.
type fakeUpstream struct {
	mu   sync.Mutex
	seen []string // "udp A name." / "tcp A name."
	addr string
}

func (f *fakeUpstream) answer(req []byte, network string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil
	}
	q := qs[0]
	f.mu.Lock()
	f.seen = append(f.seen, network+" "+describe(qs))
	f.mu.Unlock()
	if q.Name.String() == "other.example." {
		out, _ := reply(h, qs, dnsmessage.RCodeNameError, nil)
		return out
	}
	out, _ := reply(h, qs, dnsmessage.RCodeSuccess, func(b *dnsmessage.Builder) error {
		if q.Type != dnsmessage.TypeA {
			return nil
		}
		return b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 30}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 99}})
	})
	return out
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
	t.Cleanup(func() { pc.Close(); l.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := f.answer(buf[:n], "udp"); out != nil {
				_, _ = pc.WriteTo(out, addr)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					req, err := readTCPMsg(c)
					if err != nil {
						return
					}
					if out := f.answer(req, "tcp"); out == nil || writeTCPMsg(c, out) != nil {
						return
					}
				}
			}()
		}
	}()
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
	s := &DNSServer{Hosts: []string{"www.aliyun.com", "httpbin.org."}, Answer: net.ParseIP("10.96.0.42"), Upstream: upstream, Timeout: time.Second}
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

type answer struct {
	rcode dnsmessage.RCode
	id    uint16
	a     []string
	n     int // answers of any type
}

// query asks server name/qtype over network, as a stub resolver does (recursion desired).
func query(t *testing.T, network, server, name string, qtype dnsmessage.Type) answer {
	t.Helper()
	const id = 0x4242
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET})
	req, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout(network, server, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var resp []byte
	if network == "tcp" {
		if err := writeTCPMsg(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err = readTCPMsg(c)
	} else {
		if _, err = c.Write(req); err == nil {
			buf := make([]byte, 65535)
			var n int
			n, err = c.Read(buf)
			resp = buf[:n]
		}
	}
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, qtype, name, err)
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Response {
		t.Fatalf("%s %s: not a response", network, name)
	}
	_ = p.SkipAllQuestions()
	out := answer{rcode: h.RCode, id: h.ID}
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		out.n++
		if rh.Type == dnsmessage.TypeA {
			r, err := p.AResource()
			if err != nil {
				t.Fatal(err)
			}
			out.a = append(out.a, net.IP(r.A[:]).String())
		} else {
			_ = p.SkipAnswer()
		}
	}
	if out.id != id {
		t.Errorf("%s %s: reply ID %#x, want %#x", network, name, out.id, id)
	}
	return out
}

func TestDNSServerAnswersCatalogHostsAndForwardsTheRest(t *testing.T) {
	up := startFakeUpstream(t)
	addr := startDNS(t, up.addr)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := query(t, network, addr, "WWW.Aliyun.com.", dnsmessage.TypeA)
			if r.rcode != dnsmessage.RCodeSuccess || strings.Join(r.a, ",") != "10.96.0.42" {
				t.Errorf("A www.aliyun.com: %v %v, want the stand-in's 10.96.0.42", r.rcode, r.a)
			}
			r = query(t, network, addr, "httpbin.org.", dnsmessage.TypeAAAA)
			if r.rcode != dnsmessage.RCodeSuccess || r.n != 0 {
				t.Errorf("AAAA httpbin.org: %v with %d answers, want NOERROR with none (NODATA)", r.rcode, r.n)
			}
			r = query(t, network, addr, "kubernetes.default.svc.cluster.local.", dnsmessage.TypeA)
			if strings.Join(r.a, ",") != "192.0.2.99" {
				t.Errorf("A of another name: %v, want the upstream's 192.0.2.99", r.a)
			}
			r = query(t, network, addr, "other.example.", dnsmessage.TypeA)
			if r.rcode != dnsmessage.RCodeNameError {
				t.Errorf("the upstream's NXDOMAIN came back as %v", r.rcode)
			}
			// A search-list expansion of a catalog host is another name.
			r = query(t, network, addr, "www.aliyun.com.demo.svc.cluster.local.", dnsmessage.TypeA)
			if strings.Join(r.a, ",") != "192.0.2.99" {
				t.Errorf("search-list expansion of a catalog host: %v, want it forwarded", r.a)
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
		if strings.Contains(q, " www.aliyun.com.") && !strings.Contains(q, "svc") || strings.Contains(q, "httpbin.org.") {
			t.Errorf("a catalog host was forwarded: %s", q)
		}
	}
	for q, ok := range want {
		if !ok {
			t.Errorf("the upstream never saw %q (forwarded over the client's transport); saw %v", q, up.queries())
		}
	}
}

func TestDNSServerUpstreamDownIsServfail(t *testing.T) {
	// A UDP port nothing answers on: the relay times out.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := startDNS(t, pc.LocalAddr().String())
	if r := query(t, "udp", addr, "example.org.", dnsmessage.TypeA); r.rcode != dnsmessage.RCodeServerFailure {
		t.Errorf("rcode %v, want SERVFAIL", r.rcode)
	}
	// The catalog's hosts do not depend on the upstream.
	if r := query(t, "udp", addr, "www.aliyun.com.", dnsmessage.TypeA); len(r.a) != 1 {
		t.Errorf("catalog host with the upstream down: %v", r.a)
	}
}

func TestDNSServerRefusesBadConfig(t *testing.T) {
	for _, s := range []*DNSServer{
		{Answer: net.ParseIP("fd00::1"), Upstream: "127.0.0.1:53"},
		{Answer: net.ParseIP("10.0.0.1")},
	} {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
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
