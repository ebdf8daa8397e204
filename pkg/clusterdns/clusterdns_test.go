package clusterdns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

var (
	testHosts  = []string{"www.aliyun.com", "www.httpbin.org", "httpbin.org", "www.alibabacloud.com", "developers.google.com", "developer.yahoo.com"}
	testTarget = "internet.egressconf-internet.svc.cluster.local"
)

func readCorefile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func corefiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	names, err := filepath.Glob("testdata/*.Corefile")
	if err != nil || len(names) == 0 {
		t.Fatalf("no testdata Corefiles: %v", err)
	}
	for _, n := range names {
		out[filepath.Base(n)] = readCorefile(t, filepath.Base(n))
	}
	return out
}

// The local cluster's Corefile in testdata must be the one the cluster really gets.
func TestLocalClusterCorefileIsCurrent(t *testing.T) {
	src, err := os.ReadFile("/work/shared/tools/localcluster/coredns.yaml")
	if err != nil {
		t.Skip("local cluster sources not on this machine")
	}
	want := readCorefile(t, "localcluster.Corefile")
	var indented strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(want, "\n"), "\n") {
		indented.WriteString("    " + l + "\n")
	}
	if !strings.Contains(string(src), "  Corefile: |\n"+indented.String()) {
		t.Fatal("testdata/localcluster.Corefile differs from the local cluster's coredns.yaml")
	}
}

func TestApplyStripRoundTrip(t *testing.T) {
	for name, orig := range corefiles(t) {
		t.Run(name, func(t *testing.T) {
			got, err := Apply(orig, testHosts, testTarget, "run-7")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(got, "\n")
			if !strings.HasPrefix(lines[0], ".:53 {") {
				t.Fatalf("first line %q", lines[0])
			}
			// The block opens the root server block, indented like the block's first directive.
			indent := strings.Split(orig, "\n")[1]
			indent = indent[:len(indent)-len(strings.TrimLeft(indent, " \t"))]
			if lines[1] != indent+"# egressconf:begin run=run-7 (stand-in internet; removed when the run ends; do not edit)" {
				t.Errorf("line 2 = %q", lines[1])
			}
			for i, h := range testHosts {
				if want := indent + "rewrite name exact " + h + " " + testTarget; lines[2+i] != want {
					t.Errorf("line %d = %q, want %q", 3+i, lines[2+i], want)
				}
			}
			if lines[2+len(testHosts)] != indent+"# egressconf:end run=run-7" {
				t.Errorf("end marker line %q", lines[2+len(testHosts)])
			}
			if strings.Join(lines[3+len(testHosts):], "\n") != strings.Join(strings.Split(orig, "\n")[1:], "\n") {
				t.Error("the rest of the Corefile changed")
			}
			if _, err := parseBlocks(lines); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
			back, owners, err := Strip(got)
			if err != nil {
				t.Fatal(err)
			}
			if back != orig {
				t.Fatalf("Strip(Apply(c)) != c:\n%q\n%q", back, orig)
			}
			if len(owners) != 1 || owners[0] != "run-7" {
				t.Errorf("owners %v", owners)
			}
		})
	}
}

func TestApplyKeepsCRLFAndMissingFinalNewline(t *testing.T) {
	orig := strings.ReplaceAll(strings.TrimSuffix(readCorefile(t, "kind.Corefile"), "\n"), "\n", "\r\n")
	got, err := Apply(orig, testHosts, testTarget, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "# egressconf:begin run=- ") {
		t.Errorf("default owner missing:\n%s", got)
	}
	back, _, err := Strip(got)
	if err != nil || back != orig {
		t.Fatalf("round trip: %v\n%q", err, back)
	}
}

func TestApplyRefuses(t *testing.T) {
	kind := readCorefile(t, "kind.Corefile")
	withRoot := func(extra string) string {
		return strings.Replace(kind, "    errors\n", "    errors\n"+extra, 1)
	}
	cases := map[string]struct {
		corefile, target string
		conflict         bool
		want             string
	}{
		"existing rewrite": {withRoot("    rewrite name exact www.aliyun.com other.svc.cluster.local\n"), testTarget, true,
			`line 3: the root server block already mentions www.aliyun.com`},
		"existing hosts entry": {withRoot("    hosts {\n        10.0.0.1 httpbin.org\n        fallthrough\n    }\n"), testTarget, true,
			"line 4: the root server block already mentions httpbin.org"},
		"trailing-dot mention": {withRoot("    template IN A developer.yahoo.com. {\n        answer \"x\"\n    }\n"), testTarget, true,
			"already mentions developer.yahoo.com"},
		"server block for a parent zone": {kind + "google.com:53 {\n    forward . 8.8.8.8\n}\n", testTarget, true,
			`server block "google.com:53" answers for developers.google.com`},
		"server block for the host": {kind + "httpbin.org {\n    forward . 8.8.8.8\n}\n", testTarget, true,
			`server block "httpbin.org" answers for`},
		"other egressconf block": {Must(Apply(kind, testHosts, testTarget, "run-1")), testTarget, true,
			"already carries an egressconf block (run run-1)"},
		"damaged block": {withRoot("    # egressconf:begin run=x\n"), testTarget, true,
			"egressconf block without an end"},
		"end without begin": {withRoot("    # egressconf:end run=x\n"), testTarget, true,
			"end without a begin"},
		"target outside the cluster domain": {kind, "internet.egressconf-internet.svc.corp.example", false,
			"outside the kubernetes plugin's zones [cluster.local in-addr.arpa ip6.arpa]"},
		"no root block":        {"example.org {\n    whoami\n}\n", testTarget, false, "no root server block"},
		"no kubernetes plugin": {".:53 {\n    forward . 8.8.8.8\n}\n", testTarget, false, "no kubernetes plugin"},
		"unbalanced":           {".:53 {\n    kubernetes cluster.local {\n}\n", testTarget, false, "unbalanced"},
		"bad target":           {kind, "not a name", false, "is not a DNS name"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Apply(c.corefile, testHosts, c.target, "run-2")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
			var ce *ConflictError
			if errors.As(err, &ce) != c.conflict {
				t.Errorf("ConflictError = %v, want %v (%T)", !c.conflict, c.conflict, err)
			}
		})
	}
	// A server block on another port, or the hosts in a comment, are no conflict.
	ok := kind + "google.com:5353 {\n    forward . 8.8.8.8\n}\n"
	ok = strings.Replace(ok, "    errors\n", "    errors # see www.aliyun.com\n", 1)
	if _, err := Apply(ok, testHosts, testTarget, "run-2"); err != nil {
		t.Fatalf("no conflict expected: %v", err)
	}
}

func Must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func newFake(corefile string) *fake.Clientset {
	return fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Data:       map[string]string{"Corefile": corefile},
	})
}

func getCM(t *testing.T, cs *fake.Clientset) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func countUpdates(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	return n
}

func TestOverrideAndRestore(t *testing.T) {
	ctx := context.Background()
	for name, orig := range corefiles(t) {
		t.Run(name, func(t *testing.T) {
			cs := newFake(orig)
			restore, err := Override(ctx, cs, testHosts, testTarget, WithRunID("r1"))
			if err != nil {
				t.Fatal(err)
			}
			cm := getCM(t, cs)
			want, _ := Apply(orig, testHosts, testTarget, "r1")
			if cm.Data["Corefile"] != want {
				t.Fatalf("Corefile:\n%s", cm.Data["Corefile"])
			}
			if cm.Annotations[AnnotationOriginal] != orig || cm.Annotations[AnnotationRun] != "r1" {
				t.Errorf("annotations %v", cm.Annotations)
			}
			// Idempotent: the same run again writes nothing.
			before := countUpdates(cs)
			restore2, err := Override(ctx, cs, testHosts, testTarget, WithRunID("r1"))
			if err != nil {
				t.Fatal(err)
			}
			if countUpdates(cs) != before {
				t.Error("second Override updated the ConfigMap")
			}
			// Another run is refused while r1's block is there.
			_, err = Override(ctx, cs, testHosts, testTarget, WithRunID("r2"))
			var ce *ConflictError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "run r1") {
				t.Fatalf("other run: %v", err)
			}
			if err := restore(ctx); err != nil {
				t.Fatal(err)
			}
			cm = getCM(t, cs)
			if cm.Data["Corefile"] != orig {
				t.Fatalf("not restored exactly:\n%q\nwant\n%q", cm.Data["Corefile"], orig)
			}
			if _, ok := cm.Annotations[AnnotationOriginal]; ok {
				t.Error("annotation left behind")
			}
			// restore again (and the second Override's restore) are no-ops.
			before = countUpdates(cs)
			if err := restore(ctx); err != nil {
				t.Fatal(err)
			}
			if err := restore2(ctx); err != nil {
				t.Fatal(err)
			}
			if countUpdates(cs) != before || getCM(t, cs).Data["Corefile"] != orig {
				t.Error("repeated restore changed the ConfigMap")
			}
		})
	}
}

func TestRestoreKeepsOthersEdits(t *testing.T) {
	ctx := context.Background()
	orig := readCorefile(t, "localcluster.Corefile")
	cs := newFake(orig)
	restore, err := Override(ctx, cs, testHosts, testTarget, WithRunID("r1"))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else edits the Corefile while the run goes on.
	cm := getCM(t, cs)
	cm.Data["Corefile"] = strings.Replace(cm.Data["Corefile"], "    cache 30\n", "    cache 60\n", 1)
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(orig, "    cache 30\n", "    cache 60\n", 1)
	if got := getCM(t, cs).Data["Corefile"]; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestOverrideReplacesOwnBlockAndRefusesForeignConfig(t *testing.T) {
	ctx := context.Background()
	orig := readCorefile(t, "kind.Corefile")
	cs := newFake(orig)
	if _, err := Override(ctx, cs, testHosts[:2], testTarget, WithRunID("r1")); err != nil {
		t.Fatal(err)
	}
	// The same run with more hosts replaces its block; the original stays the pre-run text.
	restore, err := Override(ctx, cs, testHosts, testTarget, WithRunID("r1"))
	if err != nil {
		t.Fatal(err)
	}
	got := getCM(t, cs).Data["Corefile"]
	if strings.Count(got, "# egressconf:begin") != 1 || strings.Count(got, "rewrite name exact") != len(testHosts) {
		t.Fatalf("block not replaced:\n%s", got)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if getCM(t, cs).Data["Corefile"] != orig {
		t.Fatal("not restored")
	}

	// minikube already has a hosts block, which is fine; a rewrite of ours that someone else
	// wrote is not.
	cs = newFake(readCorefile(t, "minikube.Corefile"))
	if _, err := Override(ctx, cs, testHosts, testTarget); err != nil {
		t.Fatalf("minikube: %v", err)
	}
	foreign := strings.Replace(orig, "    ready\n", "    ready\n    rewrite name exact httpbin.org somewhere.else.svc.cluster.local\n", 1)
	cs = newFake(foreign)
	_, err = Override(ctx, cs, testHosts, testTarget)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("foreign rewrite: %v", err)
	}
	if countUpdates(cs) != 0 || getCM(t, cs).Data["Corefile"] != foreign {
		t.Error("a refused Override changed the ConfigMap")
	}
}

func TestRestoreAfterCrash(t *testing.T) {
	ctx := context.Background()
	orig := readCorefile(t, "kind.Corefile")
	cs := newFake(orig)
	if _, err := Override(ctx, cs, testHosts, testTarget, WithRunID("crashed")); err != nil {
		t.Fatal(err)
	}
	// Another run's id does not remove it.
	if changed, err := Restore(ctx, cs, WithRunID("other")); err != nil || changed {
		t.Fatalf("Restore(other) = %v, %v", changed, err)
	}
	changed, err := Restore(ctx, cs)
	if err != nil || !changed {
		t.Fatalf("Restore = %v, %v", changed, err)
	}
	cm := getCM(t, cs)
	if cm.Data["Corefile"] != orig || len(cm.Annotations) != 0 {
		t.Fatalf("after Restore: %v\n%s", cm.Annotations, cm.Data["Corefile"])
	}
	if changed, err := Restore(ctx, cs); err != nil || changed {
		t.Fatalf("second Restore = %v, %v", changed, err)
	}
}

func TestOverrideErrors(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	if _, err := Override(ctx, cs, testHosts, testTarget); err == nil || !strings.Contains(err.Error(), "kube-system/coredns") {
		t.Errorf("missing ConfigMap: %v", err)
	}
	cs = fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "ns"}, Data: map[string]string{}})
	if _, err := Override(ctx, cs, testHosts, testTarget, WithConfigMap("ns", "dns")); err == nil || !strings.Contains(err.Error(), "has no Corefile key") {
		t.Errorf("missing key: %v", err)
	}
	if _, err := Override(ctx, newFake(readCorefile(t, "kind.Corefile")), nil, testTarget); err == nil {
		t.Error("no hosts accepted")
	}
}
