package imagebuild

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	write(t, p, "hello", 0o644)
	sum := sha256.Sum256([]byte("hello"))
	if err := VerifySHA256(p, hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("matching sha256 refused: %v", err)
	}
	err := VerifySHA256(p, strings.Repeat("0", 64))
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("mismatch: got %v, want a refusal", err)
	}
}

func TestCABundle(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "usr/share/ca-certificates/mozilla/B.crt"), "-----B-----\n\n", 0o644)
	write(t, filepath.Join(root, "usr/share/ca-certificates/mozilla/A.crt"), "-----A-----", 0o644)
	if err := CABundle(root); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if string(b) != "-----A-----\n-----B-----\n" {
		t.Fatalf("bundle %q", b)
	}
	if err := CABundle(t.TempDir()); err == nil {
		t.Fatal("no certificates accepted")
	}
}

func TestDebFileNameAndKey(t *testing.T) {
	if got := DebFileName("libgmp10", "2:6.2.1+dfsg1-1.1", "amd64"); got != "libgmp10_2%3a6.2.1+dfsg1-1.1_amd64.deb" {
		t.Fatalf("DebFileName = %q", got)
	}
	a := Key([]string{"x 1", "y 2"})
	if a != Key([]string{"y 2", "x 1"}) {
		t.Fatal("key depends on input order")
	}
	if a == Key([]string{"x 1", "y 3"}) {
		t.Fatal("key ignores a changed input")
	}
}
