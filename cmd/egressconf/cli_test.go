package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/egressconf/egressconf/pkg/asm"
)

// The commands run in process through the whole command line (cobra, flag parsing, RunE).
func cmdList(args []string) error     { return execute(append([]string{"list"}, args...)...) }
func cmdRender(args []string) error   { return execute(append([]string{"render"}, args...)...) }
func cmdValidate(args []string) error { return execute(append([]string{"validate"}, args...)...) }
func cmdRun(args []string) error      { return execute(append([]string{"run"}, args...)...) }
func cmdCompare(args []string) error  { return execute(append([]string{"compare"}, args...)...) }
func cmdVersion(args []string) error  { return execute(append([]string{"version"}, args...)...) }

// parseMutateFlags parses mutate's command line as the command does, without running it.
func parseMutateFlags(args []string) (mutateFlags, error) {
	var f mutateFlags
	fs := pflag.NewFlagSet("mutate", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return f, usageError{err.Error()}
	}
	return f, f.check(fs.Args())
}

// runCLI runs the command line in process as main does: its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var errb bytes.Buffer
	stdout, _ = capture(t, func() error { code = run(args, &errb); return nil })
	return code, stdout, errb.String()
}

func TestRootHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, w := range []string{"list", "render", "validate", "run", "compare", "mutate", "version", "completion",
			"Exit codes:", "  0 ", "PASSED", "PARTIAL", "INCONCLUSIVE", "  1 ", "FAILED", "  2 ", "bad usage", "  130 ", "INTERRUPTED"} {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", args, w, out)
			}
		}
	}
	// No command at all is bad usage: the help goes to stderr, exit 2.
	if code, out, errOut := runCLI(t); code != 2 || out != "" || !strings.Contains(errOut, "Available Commands:") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// runFlagNames are the flags `egressconf run` had under the standard flag package: every one must
// still be defined and shown in --help.
var runFlagNames = []string{"backend", "group", "id", "catalog", "reports", "run-id", "organization", "project", "url",
	"version", "contact", "v", "serial-checks",
	"timeout-setup", "timeout-converge", "timeout-eventually", "positive-successes", "negative-hold", "probe-interval",
	"probe-connect-timeout", "probe-max-time", "timeout-access-log", "timeout-teardown", "timeout-provision", "poll-interval",
	"cluster-name", "keep-cluster", "keep", "node-image", "kubeconfig", "context", "install-istio", "istio-version",
	"istio-charts", "istio-hub", "istio-tag", "istio-image-pull-policy", "helm-debug", "istio-profile", "curl-image",
	"nginx-image", "standin-image", "load-image-archive", "apply-manifest", "load-command", "probe", "internet",
	"restart-coredns", "network-policy", "work-dir"}

func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{"run", "--help"}, {"run", "-h"}, {"help", "run"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, name := range runFlagNames {
			if !strings.Contains(out, "--"+name+" ") && !strings.Contains(out, "--"+name+"\n") {
				t.Errorf("%v does not list --%s", args, name)
			}
		}
		for _, w := range []string{"Usage:", "egressconf run", "-v, --v", "(default 5m0s)", "Exit codes:", "  130 "} {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", args, w, out)
			}
		}
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "egressconf ") || !strings.Contains(out, "istio.io/istio") {
		t.Errorf("version: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Istio != readVersion().Istio || v.Go == "" {
		t.Errorf("version --json: exit %d, %v:\n%s", code, err, out)
	}
	// A version stamped at link time (make release) is the one shown.
	defer func(old string) { version = old }(version)
	version = "v9.9.9-test"
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "egressconf v9.9.9-test") {
		t.Errorf("stamped version: exit %d:\n%s", code, out)
	}
}

func TestCompletionBash(t *testing.T) {
	code, out, _ := runCLI(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "bash completion") || !strings.Contains(out, "__start_egressconf") {
		t.Fatalf("completion bash: exit %d:\n%.400s", code, out)
	}
	// The script asks the binary for its candidates (__complete); those name every command.
	code, out, _ = runCLI(t, "__complete", "")
	for _, w := range []string{"list", "render", "validate", "run", "compare", "mutate", "version"} {
		if code != 0 || !strings.Contains(out, "\n"+w+"\t") && !strings.HasPrefix(out, w+"\t") {
			t.Errorf("__complete lacks the command %q (exit %d):\n%s", w, code, out)
		}
	}
	if code, out, _ = runCLI(t, "__complete", "run", "--backend", ""); code != 0 || !strings.Contains(out, "sim\nkind\nexisting\n") {
		t.Errorf("--backend candidates: exit %d:\n%s", code, out)
	}
	for _, sh := range []string{"zsh", "fish", "powershell"} {
		if code, out, _ := runCLI(t, "completion", sh); code != 0 || !strings.Contains(out, "egressconf") {
			t.Errorf("completion %s: exit %d", sh, code)
		}
	}
}

// Bad usage exits 2 naming what was wrong: an unknown command, an unknown flag, a flag value the
// flag refuses, a value a command refuses.
func TestUnknownCommandAndFlagExit2(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lsit"}, `unknown command "lsit" for "egressconf"`},
		{[]string{"run", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"list", "-x"}, "unknown shorthand flag: 'x' in -x"},
		{[]string{"run", "--positive-successes", "many"}, `invalid argument "many" for "--positive-successes" flag`},
		{[]string{"run", "--timeout-setup", "soon"}, `"--timeout-setup" flag`},
		{[]string{"run", "--install-istio=maybe"}, `"--install-istio" flag: want true or false`},
		{[]string{"run", "extra"}, "run takes no arguments"},
		{[]string{"compare", "a"}, "compare needs two or more results.json files"},
		{[]string{"version", "extra"}, `version takes no arguments, got "extra"`},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--help' for usage") || out != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want 2 and %q", c.args, code, errOut, out, c.want)
		}
	}
}

// The forms callers use (scripts, Makefile, workflows, kind_e2e_test.go, docs) still parse: a
// repeatable flag takes repeats and comma lists, a bare --restart-coredns means true, -v is short.
func TestCallerForms(t *testing.T) {
	root := newRootCmd()
	cmd, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	fs := cmd.Flags()
	if err := fs.Parse([]string{"--backend", "kind", "--group", "G1,G2", "--group", "G3", "--id", "DENYNS-01", "-v",
		"--restart-coredns", "--install-istio=false", "--timeout-setup", "2m", "--positive-successes=4", "--load-image-archive", "a.tar,b.tar"}); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return fs.Lookup(name).Value.String() }
	for name, want := range map[string]string{"backend": "kind", "group": "G1,G2,G3", "id": "DENYNS-01", "v": "true",
		"restart-coredns": "true", "install-istio": "false", "timeout-setup": "2m0s", "positive-successes": "4",
		"load-image-archive": "a.tar,b.tar"} {
		if got := get(name); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	// The live-only flags given are named (those refused with --backend sim), the others not.
	set := liveOnlyFlagsSet(fs)
	sort.Strings(set)
	if got := strings.Join(set, " "); got != "--install-istio --load-image-archive --restart-coredns" {
		t.Errorf("liveOnlyFlagsSet: %q", got)
	}
}

// userPolicy writes the catalog's HTTP policy naming the egress gateway corp-egress.
func userPolicy(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../suites/catalog/g02-etp-http/egress-by-egressgateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(strings.Replace(string(data), "name: egressgateway-a", "name: corp-egress", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return policy
}

// render --asm with --kubeconfig/--context reads the gateway's Service from the cluster: exactly
// one Service of the gateway's name, its selector and ports; --gateway takes precedence.
func TestRenderASMClusterGateway(t *testing.T) {
	policy := userPolicy(t)
	svc := func(ns string, ports ...int32) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "corp-egress", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"istio": "corp"}}}
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p, Protocol: corev1.ProtocolTCP})
		}
		return s
	}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "corp-gw"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	lookup := func(objs ...*corev1.Service) func(context.Context, string) (asm.Gateway, error) {
		cs := fake.NewClientset()
		for _, o := range objs {
			if err := cs.Tracker().Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return func(ctx context.Context, name string) (asm.Gateway, error) { return clusterGateway(ctx, cs, name) }
	}
	out, err := capture(t, func() error {
		return renderASM(context.Background(), policy, false, nil, lookup(other, svc("corp-gw", 80, 443)))
	})
	if err != nil || !strings.Contains(out, "host: corp-egress.corp-gw.svc.cluster.local") || !strings.Contains(out, "selector:\n    istio: corp\n") {
		t.Errorf("gateway from the cluster: %v\n%s", err, out)
	}
	for _, c := range []struct {
		objs []*corev1.Service
		want string
	}{
		{[]*corev1.Service{other}, `egress gateway "corp-egress": the cluster has no Service of that name`},
		{[]*corev1.Service{svc("a", 80), svc("b", 80)}, "in each of [a b]"},
		{[]*corev1.Service{svc("corp-gw", 443)}, "egress gateway corp-gw/corp-egress has no port 80"},
	} {
		_, err := capture(t, func() error { return renderASM(context.Background(), policy, false, nil, lookup(c.objs...)) })
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "policy.yaml") {
			t.Errorf("%d Services: %v, want %q", len(c.objs), err, c.want)
		}
	}
	given, err := parseGatewayFlags([]string{"name=corp-egress,namespace=flag-ns,selector=app=x,ports=80"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = capture(t, func() error {
		return renderASM(context.Background(), policy, false, given, lookup(svc("corp-gw", 80)))
	})
	if err != nil || !strings.Contains(out, "corp-egress.flag-ns.svc") || strings.Contains(out, "corp-gw") {
		t.Errorf("--gateway must win over the cluster: %v\n%s", err, out)
	}
}

// render --asm for a gateway of the user's: the resources select its pods, route to its Service in
// its namespace, through its ports; without --gateway the policy is refused, pointing to --gateway.
func TestRenderASMUserGateway(t *testing.T) {
	if code, out, _ := runCLI(t, "render", "--help"); code != 0 || !strings.Contains(out, "--gateway SPEC") || !strings.Contains(out, "--kubeconfig string") {
		t.Errorf("render --help: exit %d:\n%s", code, out)
	}
	policy := userPolicy(t)
	_, err := capture(t, func() error { return cmdRender([]string{"--asm", policy}) })
	if err == nil || !strings.Contains(err.Error(), `unknown egress gateway "corp-egress"`) || !strings.Contains(err.Error(), "--gateway name=corp-egress,") || !strings.Contains(err.Error(), "policy.yaml") {
		t.Errorf("render --asm without --gateway: %v", err)
	}

	gw := "name=corp-egress,namespace=corp-gw,selector=app=corp-egress;istio=corp,ports=http:80;https:443"
	out, err := capture(t, func() error { return cmdRender([]string{"--asm", policy, "--gateway", gw}) })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"kind: Gateway", "selector:\n    app: corp-egress\n    istio: corp\n", "host: corp-egress.corp-gw.svc.cluster.local",
		"- corp-gw", "number: 80"} {
		if !strings.Contains(out, w) {
			t.Errorf("translation lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "egressgateway-a") || strings.Contains(out, "istio-egress.svc") {
		t.Errorf("translation still names the fixture gateway:\n%s", out)
	}
	// The gateway's ports are the ones given: a gateway without the policy's port 80 is refused.
	_, err = capture(t, func() error {
		return cmdRender([]string{"--asm", policy, "--gateway", "name=corp-egress,namespace=corp-gw,selector=app=corp-egress,ports=443"})
	})
	if err == nil || !strings.Contains(err.Error(), "egress gateway corp-gw/corp-egress has no port 80") {
		t.Errorf("gateway without port 80: %v", err)
	}
	// Without --gateway the fixtures are unchanged: the catalog's own policy still translates.
	out, err = capture(t, func() error {
		return cmdRender([]string{"--asm", "../../suites/catalog/g02-etp-http/egress-by-egressgateway.yaml"})
	})
	if err != nil || !strings.Contains(out, "egressgateway-a.istio-egress.svc.cluster.local") {
		t.Errorf("fixture gateway: %v\n%s", err, out)
	}
}

// A malformed --gateway is a usage error (exit 2) naming the flag and the bad part.
func TestGatewayFlagRefused(t *testing.T) {
	const ok = "name=gw,namespace=ns,selector=app=gw,ports=80"
	if g, err := parseGatewayFlag("name=gw,namespace=ns,selector=app=gw;istio=x,ports=http:80;443"); err != nil ||
		g.Name != "gw" || g.Namespace != "ns" || g.Labels["istio"] != "x" || len(g.Ports) != 2 || g.Ports[0].Name != "http" || g.Ports[1].Number != 443 {
		t.Errorf("parse: %+v %v", g, err)
	}
	for _, c := range []struct{ value, want string }{
		{"name=gw,namespace=ns,selector=app=gw", "ports is missing"},
		{"name=gw,namespace=ns,ports=80", "selector is missing"},
		{"name=GW,namespace=ns,selector=app=gw,ports=80", `name "GW"`},
		{"name=gw,namespace=ns,selector=app,ports=80", `selector "app" is not KEY=VALUE`},
		{"name=gw,namespace=ns,selector=app=a b,ports=80", `selector app value "a b"`},
		{"name=gw,namespace=ns,selector=app=gw,ports=http:99999", `port "http:99999": the number must be 1 to 65535`},
		{"name=gw,namespace=ns,selector=app=gw,ports=80;80", "port 80 is given twice"},
		{"name=gw,namespace=ns,selector=app=gw,ports=Bad_Name:80", `name "Bad_Name"`},
		{ok + ",zone=a", `unknown key "zone"`},
		{ok + ",name=x", "name is given twice"},
		{"gw", `"gw" is not KEY=VALUE`},
	} {
		_, err := parseGatewayFlag(c.value)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--gateway \""+c.value+"\"") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--gateway %q: %v, want a usage error with %q", c.value, err, c.want)
		}
	}
	if _, err := parseGatewayFlags([]string{ok, ok}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("the same gateway twice: %v", err)
	}
	code, _, errOut := runCLI(t, "render", "--asm", "x.yaml", "--gateway", "name=gw")
	if code != 2 || !strings.Contains(errOut, "--gateway \"name=gw\"") {
		t.Errorf("render with a bad --gateway: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "render", "G1", "--gateway", ok); code != 2 || !strings.Contains(errOut, "are for render --asm") {
		t.Errorf("render GROUP --gateway: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "render", "G1", "--context", "x"); code != 2 || !strings.Contains(errOut, "are for render --asm") {
		t.Errorf("render GROUP --context: exit %d, %s", code, errOut)
	}
}
