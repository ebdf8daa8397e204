package live

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/clusterdns"
)

// usedGateways are the names of the present egress gateways the run's scenarios use.
func (b *Backend) usedGateways() []string {
	names := b.o.Gateways
	if names == nil {
		names = fixtures.GatewayNames()
	}
	var out []string
	for _, n := range names {
		if g := b.gateways[n]; g != nil && g.present {
			out = append(out, n)
		}
	}
	return out
}

// decideDNS applies the --cluster-dns policy: a used gateway whose Deployment (named like the
// gateway) does not carry this run's label was not installed by it and resolves with the
// cluster's DNS.
func (b *Backend) decideDNS(ctx context.Context) (clusterdns.Mode, error) {
	var foreign []string
	for _, n := range b.usedGateways() {
		g := b.gateways[n]
		d, err := b.cs.AppsV1().Deployments(g.gw.Namespace).Get(ctx, g.gw.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("egress gateway %s: %w", g.gw.Ref(), err)
		}
		if err != nil || !b.ours(d) {
			foreign = append(foreign, g.gw.Namespace+"/"+g.gw.Name)
		}
	}
	return clusterdns.Decide(clusterdns.Situation{Requested: b.o.ClusterDNS, OwnCluster: b.o.Name == "kind", ForeignGateways: foreign})
}

// clusterDomain reads the cluster's DNS domain from CoreDNS's Corefile (read only).
func (b *Backend) clusterDomain(ctx context.Context) string {
	cm, err := b.cs.CoreV1().ConfigMaps(clusterdns.DefaultNamespace).Get(ctx, clusterdns.DefaultConfigMap, metav1.GetOptions{})
	if err != nil {
		fmt.Fprintf(b.o.Progress, "   cluster domain: cluster.local (CoreDNS's Corefile unreadable: %v)\n", err)
		return "cluster.local"
	}
	return clusterdns.ClusterDomain(cm.Data[clusterdns.CorefileKey])
}

// scopeGateways points the used egress gateways (all this run's: decideDNS) at the stand-in's
// resolver: a patch of their Deployments' pod template, then a wait until every pod of each
// resolves through it, and the gateways detected again (their pods changed).
func (b *Backend) scopeGateways(ctx context.Context) ([]string, error) {
	var names []string
	for _, n := range b.usedGateways() {
		g := b.gateways[n]
		if err := b.patchGatewayDNS(ctx, g.gw); err != nil {
			return nil, err
		}
		names = append(names, g.gw.Ref())
	}
	for _, n := range b.usedGateways() {
		g := b.gateways[n]
		sel := labels.SelectorFromSet(g.gw.Labels).String()
		var last string
		err := b.poll(ctx, b.o.Timeouts.Provision, func(ctx context.Context) (bool, error) {
			pods, err := b.cs.CoreV1().Pods(g.gw.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				return false, err
			}
			n, ok := 0, true
			for i := range pods.Items {
				p := &pods.Items[i]
				scoped := p.Spec.DNSConfig != nil && len(p.Spec.DNSConfig.Nameservers) > 0 && p.Spec.DNSConfig.Nameservers[0] == b.dns.Nameserver
				if !scoped || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(p) {
					ok = false
					last = fmt.Sprintf("pod %s: scoped %v, phase %s, ready %v", p.Name, scoped, p.Status.Phase, podReady(p))
					continue
				}
				n++
			}
			return ok && n > 0, nil
		})
		if err != nil {
			return nil, fmt.Errorf("egress gateway %s: pods not rolled out with the stand-in's resolver (%s): %w", g.gw.Ref(), last, err)
		}
		st, err := b.detectGateway(ctx, g.gw)
		if err != nil {
			return nil, err
		}
		b.gateways[n] = st
	}
	sort.Strings(names)
	return names, nil
}

// patchGatewayDNS sets the stand-in's resolver in the pod template of gateway g's Deployment.
func (b *Backend) patchGatewayDNS(ctx context.Context, g fixtures.Gateway) error {
	var spec corev1.PodSpec
	b.dns.PodDNS(&spec, g.Namespace)
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"dnsPolicy": spec.DNSPolicy, "dnsConfig": spec.DNSConfig,
	}}}})
	if err != nil {
		return err
	}
	if _, err := b.cs.AppsV1().Deployments(g.Namespace).Patch(ctx, g.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("egress gateway %s: point its pods at the stand-in's resolver: %w", g.Ref(), err)
	}
	return nil
}

// scopedDNSNote is what the reports say about a scoped run.
func scopedDNSNote(nameserver string, gateways []string) string {
	gw := "none"
	if len(gateways) > 0 {
		gw = strings.Join(gateways, ", ")
	}
	return fmt.Sprintf("%s %s: only the run's own pods (fixtures, the DNS check pod, the egress gateways it installed: %s) resolve the catalog's hosts to the stand-in, through its resolver at %s; every other pod resolves as before; kube-system/coredns is not changed",
		clusterdns.Flag, clusterdns.ModeScoped, gw, nameserver)
}
