package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/pki"
	"github.com/egressconf/egressconf/pkg/standin"
)

func TestGenerateVerifiesForEveryHost(t *testing.T) {
	hosts := standin.HostNames(builtinHosts(t))
	b, err := pki.Generate(hosts, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(b.Leaves); got != len(hosts) {
		t.Fatalf("leaves = %d, want %d", got, len(hosts))
	}
	if !b.CACert.IsCA || b.CACert.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA: IsCA=%v alg=%v", b.CACert.IsCA, b.CACert.PublicKeyAlgorithm)
	}
	for _, h := range hosts {
		if err := b.Verify(h, time.Time{}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		l, _ := b.Leaf(h)
		if len(l.Cert.DNSNames) != 1 || l.Cert.DNSNames[0] != h {
			t.Errorf("%s: SAN = %v", h, l.Cert.DNSNames)
		}
		if l.Cert.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("%s: key algorithm %v", h, l.Cert.PublicKeyAlgorithm)
		}
		// The AKI links the leaf to the CA, which OpenSSL and BoringSSL use to build the chain.
		if string(l.Cert.AuthorityKeyId) != string(b.CACert.SubjectKeyId) || len(l.Cert.AuthorityKeyId) == 0 {
			t.Errorf("%s: AuthorityKeyId does not match the CA's SubjectKeyId", h)
		}
	}
}

func TestSANMismatchFails(t *testing.T) {
	b, err := pki.Generate([]string{"www.aliyun.com", "httpbin.org"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	aliyun, _ := b.Leaf("www.aliyun.com")
	for _, other := range []string{"httpbin.org", "aliyun.com", "evil.www.aliyun.com", "www.httpbin.org"} {
		err := pki.VerifyLeaf(b.CACert, aliyun.Cert, other, time.Time{})
		var hostErr x509.HostnameError
		if err == nil {
			t.Errorf("www.aliyun.com's certificate verified for %s", other)
		} else if !asHostnameError(err, &hostErr) {
			t.Errorf("%s: want a HostnameError, got %T %v", other, err, err)
		}
	}
}

func asHostnameError(err error, target *x509.HostnameError) bool {
	he, ok := err.(x509.HostnameError)
	if ok {
		*target = he
	}
	return ok
}

func TestOtherCAFails(t *testing.T) {
	a, err := pki.Generate([]string{"httpbin.org"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Generate([]string{"httpbin.org"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	la, _ := a.Leaf("httpbin.org")
	err = pki.VerifyLeaf(b.CACert, la.Cert, "httpbin.org", time.Time{})
	if _, ok := err.(x509.UnknownAuthorityError); !ok {
		t.Fatalf("leaf of run A under CA of run B: want UnknownAuthorityError, got %v", err)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := pki.Generate([]string{"httpbin.org"}, pki.Options{Now: now, Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify("httpbin.org", now.Add(24*time.Hour)); err != nil {
		t.Fatalf("within validity: %v", err)
	}
	if err := b.Verify("httpbin.org", now.Add(72*time.Hour)); err == nil {
		t.Fatal("verified after expiry")
	}
}

func TestWriteLoadDirRoundTrip(t *testing.T) {
	hosts := standin.HostNames(builtinHosts(t))
	b, err := pki.Generate(hosts, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		st, err := os.Stat(filepath.Join(dir, h+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %v, want 0600", h, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); !os.IsNotExist(err) {
		t.Errorf("the CA key must not be written (stat: %v)", err)
	}
	// A mounted Secret also has ..data entries; LoadDir must skip them.
	if err := os.Mkdir(filepath.Join(dir, "..2026_01_01"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := pki.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.CA != nil {
		t.Error("a loaded bundle has no CA key")
	}
	if strings.Join(got.Hosts(), ",") != strings.Join(b.Hosts(), ",") {
		t.Fatalf("hosts %v, want %v", got.Hosts(), b.Hosts())
	}
	if string(got.CAPEM) != string(b.CAPEM) {
		t.Fatal("CA PEM differs")
	}
	for _, h := range hosts {
		if err := got.Verify(h, time.Time{}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		// The key works: a TLS handshake with the loaded certificate verifies under the CA.
		c, err := got.GetCertificate(&tls.ClientHelloInfo{ServerName: strings.ToUpper(h)})
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if c.Leaf.DNSNames[0] != h {
			t.Errorf("GetCertificate(%s) gave %v", h, c.Leaf.DNSNames)
		}
	}
	if _, err := got.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.com"}); err == nil || !strings.Contains(err.Error(), `"example.com"`) {
		t.Errorf("unknown SNI: %v", err)
	}
	if _, err := got.GetCertificate(&tls.ClientHelloInfo{}); err == nil || !strings.Contains(err.Error(), "SNI") {
		t.Errorf("no SNI: %v", err)
	}
}

func TestLoadDirErrors(t *testing.T) {
	b, err := pki.Generate([]string{"httpbin.org", "www.aliyun.com"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Generate([]string{"httpbin.org"}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := b.Files()
	cases := map[string]struct {
		mutate func(map[string][]byte)
		want   string
	}{
		"no CA":       {func(f map[string][]byte) { delete(f, "ca.crt") }, "no ca.crt"},
		"missing key": {func(f map[string][]byte) { delete(f, "httpbin.org.key") }, "httpbin.org.crt has no matching httpbin.org.key"},
		"wrong key":   {func(f map[string][]byte) { f["httpbin.org.key"] = files["www.aliyun.com.key"] }, "does not match"},
		"renamed leaf": {func(f map[string][]byte) {
			f["httpbin.org.crt"] = files["www.aliyun.com.crt"]
			f["httpbin.org.key"] = files["www.aliyun.com.key"]
		}, "does not verify for httpbin.org"},
		"foreign CA":     {func(f map[string][]byte) { f["ca.crt"] = other.CAPEM }, "does not verify"},
		"garbage CA":     {func(f map[string][]byte) { f["ca.crt"] = []byte("nope") }, "ca.crt: no PEM"},
		"leaf as the CA": {func(f map[string][]byte) { f["ca.crt"] = files["httpbin.org.crt"] }, "not a CA"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := map[string][]byte{}
			for k, v := range files {
				f[k] = v
			}
			c.mutate(f)
			_, err := pki.FromFiles(f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca, err := pki.NewCA(pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.DecodeCertPEM(pki.EncodeCertPEM(ca.Cert))
	if err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("cert round trip: %v", err)
	}
	kp, err := pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pki.DecodeKeyPEM(kp)
	if err != nil || !k.Equal(ca.Key) {
		t.Fatalf("key round trip: %v", err)
	}
	if _, err := ca.Issue("not a host", pki.Options{}); err == nil {
		t.Fatal("issued a certificate for an invalid name")
	}
}

// builtinHosts are the built-in catalog's external hosts.
func builtinHosts(t *testing.T) []standin.Host {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "suites", "catalog", "hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := standin.LoadHosts(data)
	if err != nil {
		t.Fatal(err)
	}
	return hosts
}
