package kuberouter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend/live/addons"
)

// The manifest is what addons.Load reads: four objects, every one labelled a test-cluster
// component, the DaemonSet running the given image (never pulled) as the firewall alone.
func TestManifest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kr.yaml")
	if err := os.WriteFile(p, []byte(Manifest("docker.io/local/kube-router:test")), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := addons.Load([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.Obj.GetKind())
		if o.Obj.GetLabels()[ObjectLabel] != ComponentName {
			t.Errorf("%s lacks label %s=%s", o.Ref(), ObjectLabel, ComponentName)
		}
	}
	if got := strings.Join(kinds, ","); got != "ServiceAccount,ClusterRole,ClusterRoleBinding,DaemonSet" {
		t.Fatalf("kinds %s", got)
	}
	ds := objs[3].Obj
	if ds.GetName() != Name || ds.GetNamespace() != Namespace {
		t.Fatalf("DaemonSet %s/%s", ds.GetNamespace(), ds.GetName())
	}
	m := Manifest("docker.io/local/kube-router:test")
	for _, want := range []string{"image: docker.io/local/kube-router:test", "imagePullPolicy: Never", "hostNetwork: true",
		"privileged: true", "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false"} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
}

func TestImageLabelsAndName(t *testing.T) {
	img, err := Image(nil, map[string]string{LabelKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := cf.Config.Labels
	if l[LabelTestClusterComponent] != ComponentName || l[LabelVersion] != Version || l[LabelKey] != "k" {
		t.Fatalf("labels %v", l)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != BinaryPath {
		t.Fatalf("entrypoint %v", cf.Config.Entrypoint)
	}
	// The digest is pinned: CI's archive cache is keyed by BuilderVersion, not by this code, so an
	// assembly change must come with a BuilderVersion bump (and a new pin).
	if d, err := img.Digest(); err != nil || d.String() != "sha256:18f76b5fd1df97941a9c4032499ba5179dc05b27d7dcac2522105071f6cfe559" {
		t.Fatalf("image digest %v, %v: the assembly changed; bump BuilderVersion and this pin", d, err)
	}
	n, err := ArchiveName(DefaultRef, strings.Repeat("ab", 32))
	if err != nil || n != "kube-router-"+Version+"-abababababababab.tar" {
		t.Fatalf("ArchiveName = %q, %v", n, err)
	}
	if _, err := ArchiveName(DefaultRef, "short"); err == nil {
		t.Fatal("a short key was accepted")
	}
}
