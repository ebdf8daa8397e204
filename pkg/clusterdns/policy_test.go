package clusterdns

import (
	"os"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name    string
		s       Situation
		want    Mode
		wantErr []string
	}{
		{"kind default", Situation{Requested: ModeAuto, OwnCluster: true}, ModeOverride, nil},
		{"kind default with gateways of an earlier install", Situation{OwnCluster: true, ForeignGateways: []string{"istio-system/istio-egressgateway"}}, ModeOverride, nil},
		{"existing default", Situation{Requested: ModeAuto}, ModeScoped, nil},
		{"existing, every gateway the run's", Situation{Requested: ModeScoped}, ModeScoped, nil},
		{"kind asked scoped", Situation{Requested: ModeScoped, OwnCluster: true}, ModeScoped, nil},
		{"existing, foreign gateways", Situation{Requested: ModeAuto, ForeignGateways: []string{"istio-system/istio-egressgateway", "egress-a/egressgateway-a"}},
			"", []string{"egress-a/egressgateway-a, istio-system/istio-egressgateway were not installed by this run", "--cluster-dns override", "kube-system/coredns", "--install-istio"}},
		{"kind asked scoped, foreign gateways", Situation{Requested: ModeScoped, OwnCluster: true, ForeignGateways: []string{"istio-system/istio-egressgateway"}},
			"", []string{"istio-system/istio-egressgateway", "--cluster-dns override"}},
		{"existing, foreign gateways, override asked", Situation{Requested: ModeOverride, ForeignGateways: []string{"istio-system/istio-egressgateway"}}, ModeOverride, nil},
	} {
		got, err := Decide(c.s)
		if c.wantErr != nil {
			if err == nil {
				t.Errorf("%s: %s, want an error", c.name, got)
				continue
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q lacks %q", c.name, err, w)
				}
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "scoped": ModeScoped, "override": ModeOverride} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("global"); err == nil || !strings.Contains(err.Error(), `--cluster-dns "global"`) {
		t.Errorf("bad value: %v", err)
	}
}

func TestOverridePlan(t *testing.T) {
	p := OverridePlan([]string{"www.aliyun.com", "httpbin.org"}, "internet.egressconf-internet.svc.cluster.local", "10.96.1.2")
	for _, w := range []string{"every pod of the cluster", "httpbin.org, www.aliyun.com", "internet.egressconf-internet.svc.cluster.local (10.96.1.2)", "kube-system/coredns is restored"} {
		if !strings.Contains(p, w) {
			t.Errorf("plan %q lacks %q", p, w)
		}
	}
}

func TestClusterDomain(t *testing.T) {
	kind, err := os.ReadFile("testdata/kind.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	if got := ClusterDomain(string(kind)); got != "cluster.local" {
		t.Errorf("kind: %q", got)
	}
	custom := strings.Replace(string(kind), "kubernetes cluster.local in-addr.arpa", "kubernetes in-addr.arpa Corp.Example. ", 1)
	if got := ClusterDomain(custom); got != "corp.example" {
		t.Errorf("custom domain: %q", got)
	}
	if got := ClusterDomain(".:53 {\n    forward . /etc/resolv.conf\n}\n"); got != "cluster.local" {
		t.Errorf("no kubernetes plugin: %q", got)
	}
}
