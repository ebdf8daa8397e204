// Command standin is the stand-in internet: it answers for every external host of a catalog on
// every port the host declares, over HTTP and HTTPS (leaf certificate chosen by SNI, HTTP/2 by
// ALPN as the host allows), so no run depends on the real sites. It logs one line per request to
// stdout. The hosts are a catalog's hosts.yaml (--hosts), by default the built-in catalog's.
//
//	standin --certs DIR                       # DIR has ca.crt and <host>.crt / <host>.key
//	standin --generate-certs [--certs DIR]    # make a CA and leaves, print the CA (and write DIR)
//	        [--hosts FILE] [--http-addr :80] [--https-addr :443] [--addr PORT=ADDR]...
//	        [--dns-answer IP [--dns-addr :53] [--dns-upstream HOST:PORT]]  # the resolver (scoped DNS)
//	standin --httpbin-addr :8080              # only the httpbin API, plain HTTP, any Host (the httpbin fixture)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/egressconf/egressconf/pkg/pki"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/suites"
)

// portAddrs is the --addr flag: PORT=ADDR, repeatable.
type portAddrs map[int]string

func (p portAddrs) String() string {
	var out []string
	for port, addr := range p {
		out = append(out, fmt.Sprintf("%d=%s", port, addr))
	}
	return strings.Join(out, ",")
}

func (p portAddrs) Set(v string) error {
	port, addr, ok := strings.Cut(v, "=")
	n, err := strconv.Atoi(port)
	if !ok || err != nil || n < 1 || n > 65535 || addr == "" {
		return fmt.Errorf("%q: want PORT=ADDR, e.g. 8080=127.0.0.1:18080", v)
	}
	p[n] = addr
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. Request lines and the generated CA go to stdout, the rest to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostsFile := fs.String("hosts", "", "hosts file (a catalog's hosts.yaml); default: the built-in catalog's hosts")
	certsDir := fs.String("certs", "", "directory with ca.crt and <host>.crt/<host>.key; with --generate-certs, where to write them")
	generate := fs.Bool("generate-certs", false, "make a new CA and a leaf per host, and print the CA certificate to stdout")
	httpAddr := fs.String("http-addr", ":80", `listen address for the hosts' port 80 ("-" disables)`)
	httpsAddr := fs.String("https-addr", ":443", `listen address for the hosts' port 443 ("-" disables)`)
	addrs := portAddrs{}
	fs.Var(addrs, "addr", `PORT=ADDR: listen address for another port the hosts declare ("-" disables); default :PORT`)
	printHosts := fs.Bool("print-hosts", false, "print the hosts file in effect and exit")
	dnsAnswer := fs.String("dns-answer", "", "serve DNS: answer A queries for the hosts with this IPv4 address (the stand-in Service's ClusterIP), forward the rest")
	dnsAddr := fs.String("dns-addr", standin.DefaultDNSAddr, "DNS listen address, UDP and TCP (with --dns-answer)")
	dnsUpstream := fs.String("dns-upstream", "", "where other DNS queries go, HOST:PORT; default: the first nameserver of /etc/resolv.conf")
	httpbinAddr := fs.String("httpbin-addr", "", "serve only the httpbin API on this plain-HTTP address, for any Host (the in-mesh httpbin fixture); no hosts, certificates or DNS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *httpbinAddr != "" {
		return serveHTTPBin(ctx, *httpbinAddr, stdout, stderr)
	}

	var hosts []standin.Host
	if *hostsFile != "" {
		data, err := os.ReadFile(*hostsFile)
		if err != nil {
			return err
		}
		if hosts, err = standin.LoadHosts(data); err != nil {
			return fmt.Errorf("%s: %w", *hostsFile, err)
		}
	} else {
		c, err := suites.Builtin()
		if err != nil {
			return err
		}
		hosts = c.Hosts
	}
	if _, ok := addrs[80]; !ok {
		addrs[80] = *httpAddr
	}
	if _, ok := addrs[443]; !ok {
		addrs[443] = *httpsAddr
	}
	tlsListened := false
	for _, p := range standin.ServerPorts(hosts) {
		if p.Protocol == standin.ProtocolHTTPS && addrs[p.Port] != "-" {
			tlsListened = true
		}
	}
	if *printHosts {
		out, err := standin.MarshalHosts(hosts)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}

	var certs *pki.Bundle
	switch {
	case *generate:
		b, err := pki.Generate(standin.HostNames(hosts), pki.Options{})
		if err != nil {
			return err
		}
		if *certsDir != "" {
			if err := b.WriteDir(*certsDir); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "standin: wrote CA and %d leaves to %s\n", len(b.Leaves), *certsDir)
		}
		if _, err := stdout.Write(b.CAPEM); err != nil {
			return err
		}
		certs = b
	case *certsDir != "":
		b, err := pki.LoadDir(*certsDir)
		if err != nil {
			return err
		}
		certs = b
	case tlsListened:
		return errors.New("HTTPS needs certificates: give --certs DIR or --generate-certs")
	}

	srv := &standin.Server{
		Hosts:    hosts,
		Certs:    certs,
		Addrs:    addrs,
		Log:      stdout,
		ErrorLog: log.New(stderr, "standin: ", log.LstdFlags),
	}
	var listening []string
	for _, p := range standin.ServerPorts(hosts) {
		addr := addrs[p.Port]
		if addr == "" {
			addr = ":" + strconv.Itoa(p.Port)
		}
		listening = append(listening, fmt.Sprintf("%d/%s on %s", p.Port, p.Protocol, addr))
	}
	fmt.Fprintf(stderr, "standin: serving %s; ports %s\n",
		strings.Join(standin.HostNames(hosts), ", "), strings.Join(listening, ", "))
	if *dnsAnswer == "" {
		if err := srv.ListenAndServe(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "standin: shut down")
		return nil
	}
	ip := net.ParseIP(*dnsAnswer)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("--dns-answer %q: not an IPv4 address", *dnsAnswer)
	}
	up := *dnsUpstream
	if up == "" {
		var err error
		if up, err = standin.UpstreamFromResolvConf("/etc/resolv.conf"); err != nil {
			return fmt.Errorf("--dns-upstream not given: %w", err)
		}
	}
	d := &standin.DNSServer{Hosts: standin.HostNames(hosts), Answer: ip, Upstream: up, Log: stdout}
	fmt.Fprintf(stderr, "standin: DNS on %s: the hosts resolve to %s, other names forwarded to %s\n", *dnsAddr, ip, up)
	// Both servers stop with ctx; the first failure stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- srv.ListenAndServe(ctx); cancel() }()
	go func() { errs <- d.ListenAndServe(ctx, *dnsAddr); cancel() }()
	first := <-errs
	if err := <-errs; first == nil {
		first = err
	}
	if first != nil {
		return first
	}
	fmt.Fprintln(stderr, "standin: shut down")
	return nil
}

// serveHTTPBin is the httpbin fixture's mode: the httpbin API on one plain-HTTP address, one log
// line per request, until ctx ends.
func serveHTTPBin(ctx context.Context, addr string, stdout, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--httpbin-addr: %w", err)
	}
	h := standin.NewHTTPBinHandler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(stdout, "httpbin %s %s %s\n", r.Host, r.Method, r.URL.RequestURI())
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(stderr, "standin: ", log.LstdFlags),
	}
	fmt.Fprintf(stderr, "standin: serving the httpbin API on HTTP %s for any host\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "standin: shut down")
	return nil
}
