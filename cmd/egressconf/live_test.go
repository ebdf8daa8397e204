package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/egressconf/egressconf/pkg/backend/live"
	"github.com/egressconf/egressconf/pkg/istioinstall"
)

func TestCommandLoader(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "load.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := commandLoader(script, nil)(ctx, "/tmp/a.tar"); err != nil {
		t.Fatal(err)
	}
	if err := commandLoader(script+" --archive={} --x", nil)(ctx, "/tmp/b.tar"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "/tmp/a.tar\n--archive=/tmp/b.tar --x\n"; string(got) != want {
		t.Errorf("loader ran with %q, want %q", got, want)
	}
	err := commandLoader("false", nil)(ctx, "/tmp/c.tar")
	if err == nil || !strings.Contains(err.Error(), "false /tmp/c.tar") {
		t.Errorf("failing loader: %v", err)
	}
}

func TestLiveFlagChecks(t *testing.T) {
	for _, id := range []string{"20260101-120000-kind", "e2e.kind_1"} {
		if !labelValueRE.MatchString(id) {
			t.Errorf("%q rejected", id)
		}
	}
	for _, id := range []string{"", "a b", "-x", strings.Repeat("a", 64)} {
		if labelValueRE.MatchString(id) {
			t.Errorf("%q accepted as a label value", id)
		}
	}
	var o optBool
	if o.or(true) != true || o.or(false) != false {
		t.Error("unset optBool does not default")
	}
	if err := o.Set("false"); err != nil || o.or(true) {
		t.Errorf("set false: %v", err)
	}
}

func TestRunLiveUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--backend", "existing", "--keep-cluster", "--kubeconfig", "/nonexistent"},
		{"--backend", "kind", "--context", "x"},
		{"--backend", "existing", "--internet", "sometimes"},
		{"--backend", "existing", "--run-id", "not a label"},
	} {
		err := cmdRun(args)
		if _, ok := err.(usageError); !ok {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// A bad --probe is named even when the kubeconfig cannot be read: the flag is checked before
	// any cluster access, so the user is not sent chasing a kubeconfig problem.
	err := cmdRun([]string{"--backend", "existing", "--probe", "envoy", "--kubeconfig", "/nonexistent/kubeconfig"})
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), `--probe "envoy"`) {
		t.Errorf("--probe envoy with an unreadable kubeconfig: %v, want a usage error naming --probe", err)
	}
	err = cmdRun([]string{"--backend", "existing", "--cluster-dns", "global", "--kubeconfig", "/nonexistent/kubeconfig"})
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), `--cluster-dns "global"`) {
		t.Errorf("--cluster-dns global: %v, want a usage error naming --cluster-dns", err)
	}
}

func labelledArchive(t *testing.T, labels map[string]string) string {
	t.Helper()
	img, err := mutate.Config(empty.Image, v1.Config{Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("docker.io/local/proxyv2:test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveProfile(t *testing.T) {
	upstream := labelledArchive(t, map[string]string{istioinstall.LabelProxy: "upstream-envoy"})
	plain := labelledArchive(t, nil)
	for _, c := range []struct {
		flag     string
		archives []string
		want     istioinstall.Profile
	}{
		{"auto", nil, istioinstall.ProfileIstio},
		{"auto", []string{plain}, istioinstall.ProfileIstio},
		{"auto", []string{plain, upstream}, istioinstall.ProfileUpstreamEnvoy},
		{"istio", []string{upstream}, istioinstall.ProfileIstio},
		{"upstream-envoy", nil, istioinstall.ProfileUpstreamEnvoy},
	} {
		got, why, err := resolveProfile(c.flag, c.archives)
		if err != nil || got != c.want || why == "" {
			t.Errorf("resolveProfile(%q, %d archives) = %s (%s), %v; want %s", c.flag, len(c.archives), got, why, err, c.want)
		}
	}
	if _, _, err := resolveProfile("bogus", nil); err == nil || !strings.Contains(err.Error(), "--istio-profile") {
		t.Errorf("bad --istio-profile: %v", err)
	}
	if _, _, err := resolveProfile("auto", []string{filepath.Join(t.TempDir(), "missing.tar")}); err == nil || !strings.Contains(err.Error(), "missing.tar") {
		t.Errorf("unreadable archive: %v", err)
	}
}

// --probe xds with --internet live would label curl observations as control-plane predictions:
// refused before anything touches a cluster.
func TestXDSProbeWithLiveInternetRefused(t *testing.T) {
	for _, mode := range []string{"xds", "curl,xds"} {
		f := &liveFlags{backendName: "existing", runID: "r1", internet: "live", probeMode: mode, networkPolicy: "auto", istioProfile: "auto"}
		_, finish, err := startLive(context.Background(), f)
		finish()
		if err == nil || !strings.Contains(err.Error(), "--internet live") || !strings.Contains(err.Error(), "--probe "+mode) {
			t.Errorf("startLive(--probe %s --internet live) = %v, want a refusal", mode, err)
		}
	}
}

// --probe takes curl, xds and both (either order); anything else is named before any cluster.
func TestProbeModes(t *testing.T) {
	for in, want := range map[string]string{"": live.ProbeCurl, "curl": live.ProbeCurl, "xds": live.ProbeXDS, "curl,xds": live.ProbeBoth, "xds,curl": live.ProbeBoth} {
		if got, err := live.NormalizeProbe(in); err != nil || got != want {
			t.Errorf("NormalizeProbe(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"curl,curl", "curl,xds,envoy", "xds;curl"} {
		err := cmdRun([]string{"--backend", "existing", "--probe", bad, "--kubeconfig", "/nonexistent/kubeconfig"})
		if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), fmt.Sprintf("--probe %q", bad)) {
			t.Errorf("--probe %s: %v, want a usage error naming it", bad, err)
		}
	}
}

func TestSelectedGateways(t *testing.T) {
	c, err := loadCatalog(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := selectedGateways(c, []string{"G1"}, nil); strings.Join(got, ",") != "istio-egressgateway" {
		t.Errorf("G1 uses %v", got)
	}
	if got := selectedGateways(c, []string{"G2"}, nil); !slices.Contains(got, "egressgateway-a") {
		t.Errorf("G2 uses %v", got)
	}
	if got := selectedGateways(c, []string{"G99"}, nil); got != nil {
		t.Errorf("an invalid selection: %v, want nil (every gateway)", got)
	}
}

// TestLoadTogetherLoadsAtOnce: every archive's load starts before any ends (each waits for all to
// have started; one after another would never finish), and each failure names its archive.
func TestLoadTogetherLoadsAtOnce(t *testing.T) {
	archives := []string{"a.tar", "b.tar", "c.tar"}
	var started sync.WaitGroup
	started.Add(len(archives))
	load := func(ctx context.Context, a string) error {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if a == "b.tar" {
			return errors.New("ctr: import failed")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out strings.Builder
	err := loadTogether(ctx, load, archives, &syncWriter{w: &out})
	if err == nil || !strings.Contains(err.Error(), "image load b.tar: ctr: import failed") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err %v, want b.tar's failure only", err)
	}
	for _, a := range []string{"a.tar", "c.tar"} {
		if !strings.Contains(out.String(), "loaded "+a) {
			t.Errorf("no line for %s in:\n%s", a, out.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
