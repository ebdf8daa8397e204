package proxyimage

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBuildAndRunRealImage builds the real image (network: PyPI, Debian; the Go module proxy
// unless the modules are cached) and runs its programs in a chroot: envoy --version, pilot-agent
// version and istio-iptables in a fresh network namespace. Root only; opt in with
// EGRESSCONF_PROXYIMAGE=1. The archive goes to $EGRESSCONF_PROXYIMAGE_OUT (default
// DefaultCacheDir/out), so a second run reuses it.
func TestBuildAndRunRealImage(t *testing.T) {
	if os.Getenv("EGRESSCONF_PROXYIMAGE") != "1" {
		t.Skip("set EGRESSCONF_PROXYIMAGE=1 to build and run the real proxy image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, unshare -n)")
	}
	out := os.Getenv("EGRESSCONF_PROXYIMAGE_OUT")
	if out == "" {
		out = filepath.Join(DefaultCacheDir, "out")
	}
	start := time.Now()
	res, err := Build(t.Context(), Options{OutDir: out, Log: tlog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build: %s reused=%v size=%d in %s", res.Archive, res.Reused, res.Size, time.Since(start).Round(100*time.Millisecond))
	if ok, err := IsUpstreamEnvoyArchive(res.Archive); err != nil || !ok {
		t.Fatalf("IsUpstreamEnvoyArchive = %v, %v", ok, err)
	}
	checks, err := Verify(t.Context(), res.Archive, filepath.Join(t.TempDir(), "rootfs"))
	for _, c := range checks {
		t.Logf("$ %s\n%s", c.Command, c.Output)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("total %s", time.Since(start).Round(100*time.Millisecond))
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
