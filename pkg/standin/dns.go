package standin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DefaultDNSAddr is where the stand-in's resolver listens (UDP and TCP).
const DefaultDNSAddr = ":53"

// DNSServer is the stand-in's resolver, for pods that point their resolv.conf at it (scoped DNS,
// pkg/backend/live): A queries for Hosts are answered with Answer (the stand-in Service's
// ClusterIP), any other type for those names gets an empty answer (NODATA), and every other query
// is relayed as it is to Upstream over the transport it came in on. The cluster's DNS stays
// untouched.
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
	// Timeout of a relayed query; 5s when zero.
	Timeout time.Duration

	mu    sync.Mutex
	names map[string]bool
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
	if s.Answer.To4() == nil || s.Upstream == "" {
		pc.Close()
		l.Close()
		if s.Upstream == "" {
			return errors.New("standin: DNS needs an upstream server")
		}
		return fmt.Errorf("standin: DNS answer %q is not an IPv4 address", s.Answer)
	}
	s.names = map[string]bool{}
	for _, h := range s.Hosts {
		s.names[canonical(h)] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- s.serveUDP(ctx, pc) }()
	go func() { defer wg.Done(); errs <- s.serveTCP(ctx, l) }()
	var first error
	select {
	case <-ctx.Done():
	case err := <-errs:
		first = fmt.Errorf("standin: DNS server: %w", err)
	}
	pc.Close()
	l.Close()
	wg.Wait()
	return first
}

func (s *DNSServer) serveUDP(ctx context.Context, pc net.PacketConn) error {
	buf := make([]byte, 65535)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		req := append([]byte(nil), buf[:n]...)
		go func() {
			if resp := s.handle(req, "udp"); resp != nil {
				_, _ = pc.WriteTo(resp, addr)
			}
		}()
	}
}

func (s *DNSServer) serveTCP(ctx context.Context, l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := readTCPMsg(c)
				if err != nil {
					return
				}
				resp := s.handle(req, "tcp")
				if resp == nil || writeTCPMsg(c, resp) != nil {
					return
				}
			}
		}()
	}
}

// handle answers one query (nil: drop it, it is not a query we can read).
func (s *DNSServer) handle(req []byte, network string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) == 0 {
		return nil
	}
	if len(qs) == 1 && s.names[canonical(qs[0].Name.String())] {
		q := qs[0]
		resp, n, err := s.local(h, q)
		if err != nil {
			s.logf("%s %s %s -> stand-in: %v", network, q.Type, q.Name, err)
			return nil
		}
		s.logf("%s %s %s -> stand-in %d answer(s)", network, strings.TrimPrefix(q.Type.String(), "Type"), q.Name, n)
		return resp
	}
	resp, err := s.relay(req, network)
	if err != nil {
		s.logf("%s %s -> forward to %s failed: %v", network, describe(qs), s.Upstream, err)
		out, _ := reply(h, qs, dnsmessage.RCodeServerFailure, nil)
		return out
	}
	rcode := "?"
	var rp dnsmessage.Parser
	if rh, err := rp.Start(resp); err == nil {
		rcode = strings.TrimPrefix(rh.RCode.String(), "RCode")
	}
	s.logf("%s %s -> forwarded to %s: %s", network, describe(qs), s.Upstream, rcode)
	return resp
}

// local is the stand-in's own answer: A -> Answer, any other type -> NODATA.
func (s *DNSServer) local(h dnsmessage.Header, q dnsmessage.Question) ([]byte, int, error) {
	if q.Type != dnsmessage.TypeA || q.Class != dnsmessage.ClassINET {
		out, err := reply(h, []dnsmessage.Question{q}, dnsmessage.RCodeSuccess, nil)
		return out, 0, err
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = 5
	}
	var a [4]byte
	copy(a[:], s.Answer.To4())
	out, err := reply(h, []dnsmessage.Question{q}, dnsmessage.RCodeSuccess, func(b *dnsmessage.Builder) error {
		return b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl}, dnsmessage.AResource{A: a})
	})
	return out, 1, err
}

// reply builds a response to h with the questions and, if given, answers.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode, answers func(*dnsmessage.Builder) error) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: rcode == dnsmessage.RCodeSuccess,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	if answers != nil {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		if err := answers(&b); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// relay sends the query as it is to Upstream and returns its reply. Over UDP the client's own
// EDNS size travels with it, so a reply that does not fit comes back truncated and the client
// retries over TCP, which is relayed over TCP.
func (s *DNSServer) relay(req []byte, network string) ([]byte, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c, err := net.DialTimeout(network, s.Upstream, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if network == "tcp" {
		if err := writeTCPMsg(c, req); err != nil {
			return nil, err
		}
		return readTCPMsg(c)
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// Only the reply to this query (same ID) counts.
		if n >= 2 && buf[0] == req[0] && buf[1] == req[1] {
			return buf[:n], nil
		}
	}
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func writeTCPMsg(w io.Writer, msg []byte) error {
	if len(msg) > 65535 {
		return errors.New("DNS message too long for TCP")
	}
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	_, err := w.Write(out)
	return err
}

func canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func describe(qs []dnsmessage.Question) string {
	var out []string
	for _, q := range qs {
		out = append(out, strings.TrimPrefix(q.Type.String(), "Type")+" "+q.Name.String())
	}
	return strings.Join(out, ",")
}

func (s *DNSServer) logf(format string, args ...any) {
	if s.Log == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.Log, "%s dns "+format+"\n", append([]any{time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")}, args...)...)
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
