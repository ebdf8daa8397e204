// Package pki makes the per-run certificate authority of the stand-in internet and a leaf
// certificate for every external host it serves, all in Go (crypto/x509, ECDSA P-256).
//
// Files on disk (WriteDir / LoadDir), the layout cmd/standin reads and the stand-in's Secret holds:
//
//	ca.crt          the CA certificate (PEM); the only file clients need
//	<host>.crt      the leaf certificate of <host> (PEM), SAN = DNS:<host>
//	<host>.key      its private key (PEM, PKCS#8), mode 0600
//
// The CA's private key never leaves the process that made it: a run signs every leaf up front.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// CAFile is the name of the CA certificate file in a certificate directory and the key of the
// CA certificate in the Secret and ConfigMap made from it.
const CAFile = "ca.crt"

// DefaultValidity is how long generated certificates are valid. A run regenerates them, so this
// only needs to outlast a long run on a cluster that is kept around.
const DefaultValidity = 30 * 24 * time.Hour

// clockSkew backdates NotBefore so nodes with a slightly late clock accept fresh certificates.
const clockSkew = time.Hour

// CA is a certificate authority that can sign leaf certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// Leaf is a host's certificate and private key.
type Leaf struct {
	Host    string
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	// TLS is ready for tls.Config (chain: the leaf only; clients hold the CA).
	TLS tls.Certificate
}

// Options tunes generation. The zero value is fine.
type Options struct {
	// CommonName of the CA; default "egressconf stand-in CA".
	CommonName string
	// Validity of every certificate; default DefaultValidity.
	Validity time.Duration
	// Now is the start of validity (minus an hour of skew); default time.Now().
	Now time.Time
}

func (o Options) withDefaults() Options {
	if o.CommonName == "" {
		o.CommonName = "egressconf stand-in CA"
	}
	if o.Validity <= 0 {
		o.Validity = DefaultValidity
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// NewCA makes a self-signed ECDSA P-256 CA that may sign leaves only (path length 0).
func NewCA(opts Options) (*CA, error) {
	opts = opts.withDefaults()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{"egressconf"}},
		NotBefore:             opts.Now.Add(-clockSkew),
		NotAfter:              opts.Now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// SubjectKeyId is derived from the public key by x509.CreateCertificate for a CA, and
		// leaves get the matching AuthorityKeyId.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA: %w", err)
	}
	return &CA{Cert: cert, CertPEM: EncodeCertPEM(cert), Key: key}, nil
}

// Issue signs a server certificate for host (SAN DNS:host, CN host, ExtKeyUsage serverAuth).
func (ca *CA) Issue(host string, opts Options) (*Leaf, error) {
	opts = opts.withDefaults()
	host = normalizeHost(host)
	if err := checkHostName(host); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: key for %s: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := opts.Now.Add(opts.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"egressconf"}},
		DNSNames:              []string{host},
		NotBefore:             opts.Now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %s: %w", host, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", host, err)
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	return newLeaf(host, cert, EncodeCertPEM(cert), keyPEM, key)
}

func newLeaf(host string, cert *x509.Certificate, certPEM, keyPEM []byte, key crypto.PrivateKey) (*Leaf, error) {
	return &Leaf{
		Host:    host,
		Cert:    cert,
		CertPEM: certPEM,
		KeyPEM:  keyPEM,
		TLS:     tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
	}, nil
}

// Bundle is the CA certificate and the leaves of one run. CA is nil when the bundle was loaded
// from disk (the CA key is never written).
type Bundle struct {
	CA     *CA
	CACert *x509.Certificate
	CAPEM  []byte
	Leaves map[string]*Leaf // by lower-case host name

	poolOnce sync.Once
	pool     *x509.CertPool
}

// Generate makes a new CA and a leaf for every host.
func Generate(hosts []string, opts Options) (*Bundle, error) {
	if len(hosts) == 0 {
		return nil, errors.New("pki: no hosts to issue certificates for")
	}
	ca, err := NewCA(opts)
	if err != nil {
		return nil, err
	}
	b := &Bundle{CA: ca, CACert: ca.Cert, CAPEM: ca.CertPEM, Leaves: map[string]*Leaf{}}
	for _, h := range hosts {
		n := normalizeHost(h)
		if _, dup := b.Leaves[n]; dup {
			return nil, fmt.Errorf("pki: host %q listed twice", h)
		}
		leaf, err := ca.Issue(n, opts)
		if err != nil {
			return nil, err
		}
		b.Leaves[n] = leaf
	}
	return b, nil
}

// Hosts lists the hosts that have a leaf, sorted.
func (b *Bundle) Hosts() []string {
	out := make([]string, 0, len(b.Leaves))
	for h := range b.Leaves {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Leaf returns the leaf of host (case-insensitive, trailing dot ignored).
func (b *Bundle) Leaf(host string) (*Leaf, bool) {
	l, ok := b.Leaves[normalizeHost(host)]
	return l, ok
}

// CertPool holds the CA certificate only.
func (b *Bundle) CertPool() *x509.CertPool {
	b.poolOnce.Do(func() {
		b.pool = x509.NewCertPool()
		b.pool.AddCert(b.CACert)
	})
	return b.pool
}

// GetCertificate picks the leaf by the client's SNI, for tls.Config.GetCertificate. A client
// that sends no SNI, or a name without a leaf, fails the handshake with an error naming it.
func (b *Bundle) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, errors.New("pki: client sent no TLS server name (SNI); the stand-in chooses its certificate by SNI")
	}
	l, ok := b.Leaf(hello.ServerName)
	if !ok {
		return nil, fmt.Errorf("pki: no certificate for TLS server name %q (have %s)", hello.ServerName, strings.Join(b.Hosts(), ", "))
	}
	return &l.TLS, nil
}

// Verify checks that host's leaf chains to the CA and is valid for host at time at (zero: now).
func (b *Bundle) Verify(host string, at time.Time) error {
	l, ok := b.Leaf(host)
	if !ok {
		return fmt.Errorf("pki: no certificate for %q", host)
	}
	return VerifyLeaf(b.CACert, l.Cert, host, at)
}

// VerifyLeaf verifies leaf for serverName against the single root ca, as a TLS client would.
func VerifyLeaf(ca, leaf *x509.Certificate, serverName string, at time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:     serverName,
		Roots:       roots,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// WriteDir writes ca.crt and <host>.crt / <host>.key for every leaf into dir (created 0755 if
// missing). Keys are 0600.
func (b *Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CAFile), b.CAPEM, 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	for _, h := range b.Hosts() {
		l := b.Leaves[h]
		if err := os.WriteFile(filepath.Join(dir, h+".crt"), l.CertPEM, 0o644); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, h+".key"), l.KeyPEM, 0o600); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

// Files returns the bundle as file name -> content, the layout WriteDir writes (for a Secret).
func (b *Bundle) Files() map[string][]byte {
	out := map[string][]byte{CAFile: b.CAPEM}
	for h, l := range b.Leaves {
		out[h+".crt"] = l.CertPEM
		out[h+".key"] = l.KeyPEM
	}
	return out
}

// LoadDir reads a directory written by WriteDir (or a mounted Secret made from Files): ca.crt and
// every <host>.crt that has a <host>.key. Each leaf must be valid for its host under the CA.
func LoadDir(dir string) (*Bundle, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		// A mounted Secret has ..data and ..<timestamp> entries and symlinks to them.
		if strings.HasPrefix(name, "..") || (name != CAFile && !strings.HasSuffix(name, ".crt") && !strings.HasSuffix(name, ".key")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		files[name] = data
	}
	b, err := FromFiles(files)
	if err != nil {
		return nil, fmt.Errorf("%w (directory %s)", err, dir)
	}
	return b, nil
}

// FromFiles is LoadDir over an in-memory file set (for example a Secret's data).
func FromFiles(files map[string][]byte) (*Bundle, error) {
	caPEM, ok := files[CAFile]
	if !ok {
		return nil, fmt.Errorf("pki: no %s", CAFile)
	}
	caCert, err := DecodeCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAFile, err)
	}
	if !caCert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", CAFile)
	}
	b := &Bundle{CACert: caCert, CAPEM: caPEM, Leaves: map[string]*Leaf{}}
	var names []string
	for name := range files {
		if name != CAFile && strings.HasSuffix(name, ".crt") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		host := strings.TrimSuffix(name, ".crt")
		keyPEM, ok := files[host+".key"]
		if !ok {
			return nil, fmt.Errorf("pki: %s has no matching %s.key", name, host)
		}
		cert, err := DecodeCertPEM(files[name])
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", name, err)
		}
		key, err := DecodeKeyPEM(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("pki: %s.key: %w", host, err)
		}
		if !key.PublicKey.Equal(cert.PublicKey) {
			return nil, fmt.Errorf("pki: %s.key does not match %s", host, name)
		}
		if err := VerifyLeaf(caCert, cert, host, time.Time{}); err != nil {
			return nil, fmt.Errorf("pki: %s does not verify for %s under %s: %w", name, host, CAFile, err)
		}
		leaf, err := newLeaf(normalizeHost(host), cert, files[name], keyPEM, key)
		if err != nil {
			return nil, err
		}
		b.Leaves[leaf.Host] = leaf
	}
	if len(b.Leaves) == 0 {
		return nil, errors.New("pki: no <host>.crt / <host>.key pairs")
	}
	return b, nil
}

// EncodeCertPEM encodes a certificate as a PEM "CERTIFICATE" block.
func EncodeCertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// DecodeCertPEM decodes the first "CERTIFICATE" block.
func DecodeCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// EncodeKeyPEM encodes an ECDSA key as a PKCS#8 "PRIVATE KEY" block (what Envoy, curl and Go read).
func EncodeKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DecodeKeyPEM decodes an ECDSA key from a "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" (SEC 1) block.
func DecodeKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			return ek, nil
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		}
	}
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

func checkHostName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("pki: invalid host name %q", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("pki: invalid host name %q", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("pki: invalid host name %q", h)
			}
		}
	}
	return nil
}
