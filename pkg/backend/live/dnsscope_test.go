package live

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/clusterdns"
)

func gatewayDeployment(g fixtures.Gateway, run string) *appsv1.Deployment {
	l := map[string]string{}
	if run != "" {
		l[fixtures.LabelRun] = run
	}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace, Labels: l}}
}

func TestDecideDNSFromTheGatewaysInstaller(t *testing.T) {
	ig, ga := fixtures.Gateways["istio-egressgateway"], fixtures.Gateways["egressgateway-a"]
	ctx := context.Background()
	b := testBackend(t, nil, gatewayDeployment(ig, "run-1"), gatewayDeployment(ga, "an-earlier-run"))
	b.gateways["istio-egressgateway"] = &gatewayState{gw: ig, present: true}
	b.gateways["egressgateway-a"] = &gatewayState{gw: ga, present: true}

	_, err := b.decideDNS(ctx)
	if err == nil || !strings.Contains(err.Error(), ga.Namespace+"/"+ga.Name) || strings.Contains(err.Error(), ig.Namespace+"/"+ig.Name) || !strings.Contains(err.Error(), "--cluster-dns override") {
		t.Errorf("a gateway of another run: %v, want a refusal naming %s/%s only, and the flag", err, ga.Namespace, ga.Name)
	}
	// Only the selected scenarios' gateways count.
	b.o.Gateways = []string{"istio-egressgateway"}
	if m, err := b.decideDNS(ctx); err != nil || m != clusterdns.ModeScoped {
		t.Errorf("the run's own gateway only: %q, %v; want scoped", m, err)
	}
	// A missing gateway (the scenario is skipped) does not count either.
	b.o.Gateways = nil
	b.gateways["egressgateway-a"].present = false
	if m, err := b.decideDNS(ctx); err != nil || m != clusterdns.ModeScoped {
		t.Errorf("foreign gateway missing: %q, %v; want scoped", m, err)
	}
	// A present gateway without a Deployment of its name was not installed by the run.
	b.gateways["egressgateway-a"].present = true
	if err := b.cs.AppsV1().Deployments(ga.Namespace).Delete(ctx, ga.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.decideDNS(ctx); err == nil {
		t.Error("a gateway without its Deployment: no refusal")
	}
	b.o.ClusterDNS = clusterdns.ModeOverride
	if m, err := b.decideDNS(ctx); err != nil || m != clusterdns.ModeOverride {
		t.Errorf("--cluster-dns override: %q, %v", m, err)
	}
	b.o.ClusterDNS, b.o.Name = clusterdns.ModeAuto, "kind"
	if m, err := b.decideDNS(ctx); err != nil || m != clusterdns.ModeOverride {
		t.Errorf("kind, auto: %q, %v; want override", m, err)
	}
}

func TestPatchGatewayDNS(t *testing.T) {
	ig := fixtures.Gateways["istio-egressgateway"]
	ctx := context.Background()
	d := gatewayDeployment(ig, "run-1")
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "istio-proxy", Image: "proxyv2"}}
	b := testBackend(t, nil, d)
	b.dns = &fixtures.DNS{Nameserver: "10.96.0.77"}
	if err := b.patchGatewayDNS(ctx, ig); err != nil {
		t.Fatal(err)
	}
	got, err := b.cs.AppsV1().Deployments(ig.Namespace).Get(ctx, ig.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := got.Spec.Template.Spec
	if spec.DNSPolicy != corev1.DNSNone || spec.DNSConfig == nil || spec.DNSConfig.Nameservers[0] != "10.96.0.77" ||
		spec.DNSConfig.Searches[0] != ig.Namespace+".svc.cluster.local" || len(spec.Containers) != 1 {
		t.Errorf("patched pod spec: policy %q config %+v containers %d", spec.DNSPolicy, spec.DNSConfig, len(spec.Containers))
	}
	if err := b.patchGatewayDNS(ctx, fixtures.Gateways["egressgateway-a"]); err == nil || !strings.Contains(err.Error(), "egressgateway-a") {
		t.Errorf("patch of a missing Deployment: %v", err)
	}
}
