package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultDNSAddr is where the stand-in's resolver listens (UDP and TCP).
const DefaultDNSAddr = ":53"

// DNSServer is the stand-in's resolver, for pods that point their resolv.conf at it (scoped DNS,
// pkg/backend/live): A queries for Hosts are answered with Answer (the stand-in Service's
// ClusterIP), any other type for those names gets an empty answer (NODATA), and every other query
// is forwarded to Upstream over the transport it came in on. The cluster's DNS stays untouched.
type DNSServer struct {
	// Hosts answered by the stand-in (case-insensitive, with or without a trailing dot).
	Hosts []string
	// Answer is the IPv4 address returned for Hosts.
	Answer net.IP
	// Upstream is host:port of the DNS server other queries go to (UpstreamFromResolvConf).
	Upstream string
	// TTL of the answers, seconds; 5 when zero (a later run may have another address).
	TTL uint32
	// Log receives one line per query; nil logs nothing.
	Log io.Writer
	// Timeout of a forwarded query; 5s when zero.
	Timeout time.Duration

	mu sync.Mutex
}

func (s *DNSServer) names() map[string]bool {
	m := map[string]bool{}
	for _, h := range s.Hosts {
		m[dns.CanonicalName(h)] = true
	}
	return m
}

// ListenAndServe listens on addr over UDP and TCP and serves until ctx ends.
func (s *DNSServer) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("standin: DNS listen UDP %s: %w", addr, err)
	}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("standin: DNS listen TCP %s: %w", addr, err)
	}
	return s.Serve(ctx, pc, l)
}

// Serve answers on pc (UDP) and l (TCP) until ctx ends, then closes both and returns nil.
func (s *DNSServer) Serve(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	if s.Answer.To4() == nil {
		pc.Close()
		l.Close()
		return fmt.Errorf("standin: DNS answer %q is not an IPv4 address", s.Answer)
	}
	if s.Upstream == "" {
		pc.Close()
		l.Close()
		return errors.New("standin: DNS needs an upstream server")
	}
	names := s.names()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.handle(w, r, names) })
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	errs := make(chan error, 2)
	go func() { errs <- udp.ActivateAndServe() }()
	go func() { errs <- tcp.ActivateAndServe() }()
	var first error
	select {
	case <-ctx.Done():
	case err := <-errs:
		first = fmt.Errorf("standin: DNS server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = udp.ShutdownContext(sctx)
	_ = tcp.ShutdownContext(sctx)
	return first
}

func (s *DNSServer) handle(w dns.ResponseWriter, r *dns.Msg, names map[string]bool) {
	if len(r.Question) == 1 && names[dns.CanonicalName(r.Question[0].Name)] {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		ttl := s.TTL
		if ttl == 0 {
			ttl = 5
		}
		if q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   s.Answer.To4(),
			}}
		}
		s.logf("%s %s %s -> stand-in %d answer(s)", proto(w), dns.TypeToString[q.Qtype], q.Name, len(m.Answer))
		_ = w.WriteMsg(m)
		return
	}
	network := proto(w)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c := &dns.Client{Net: network, Timeout: timeout}
	resp, _, err := c.Exchange(r, s.Upstream)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		s.logf("%s %s -> forward to %s failed: %v", network, questions(r), s.Upstream, err)
		_ = w.WriteMsg(m)
		return
	}
	resp.Id = r.Id
	if network == "udp" {
		// The client's buffer bounds the UDP reply; a truncated one makes it retry over TCP.
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		resp.Truncate(size)
	}
	s.logf("%s %s -> forwarded to %s: %s", network, questions(r), s.Upstream, dns.RcodeToString[resp.Rcode])
	_ = w.WriteMsg(resp)
}

func (s *DNSServer) logf(format string, args ...any) {
	if s.Log == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.Log, "%s dns "+format+"\n", append([]any{time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")}, args...)...)
}

func proto(w dns.ResponseWriter) string {
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		return "tcp"
	}
	return "udp"
}

func questions(r *dns.Msg) string {
	var qs []string
	for _, q := range r.Question {
		qs = append(qs, dns.TypeToString[q.Qtype]+" "+q.Name)
	}
	return strings.Join(qs, ",")
}

// UpstreamFromResolvConf returns the first nameserver of a resolv.conf file as host:53 (the
// cluster's DNS, for a pod with the default dnsPolicy).
func UpstreamFromResolvConf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			return net.JoinHostPort(f[1], "53"), nil
		}
	}
	return "", fmt.Errorf("%s: no nameserver line", path)
}
