package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/egressconf/egressconf/pkg/asm"
)

// parseGatewayFlags parses every --gateway value (see parseGatewayFlag) into gateways by name.
func parseGatewayFlags(values []string) (map[string]asm.Gateway, error) {
	out := map[string]asm.Gateway{}
	for _, v := range values {
		g, err := parseGatewayFlag(v)
		if err != nil {
			return nil, err
		}
		if _, dup := out[g.Name]; dup {
			return nil, usageError{fmt.Sprintf("--gateway %q: gateway %q is given twice", v, g.Name)}
		}
		out[g.Name] = g
	}
	return out, nil
}

// parseGatewayFlag parses name=NAME,namespace=NS,selector=K=V[;K=V...],ports=[NAME:]NUMBER[;...]:
// a user's egress gateway, as the ASM translation needs it (its Service's name, namespace and
// ports, and its pods' labels). Each error is a usage error naming the flag and the bad part.
func parseGatewayFlag(v string) (asm.Gateway, error) {
	bad := func(format string, a ...any) (asm.Gateway, error) {
		return asm.Gateway{}, usageError{fmt.Sprintf("--gateway %q: ", v) + fmt.Sprintf(format, a...) +
			" (want name=NAME,namespace=NS,selector=KEY=VALUE[;KEY=VALUE],ports=[PORTNAME:]NUMBER[;...])"}
	}
	var g asm.Gateway
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return bad("%q is not KEY=VALUE", part)
		}
		if seen[key] {
			return bad("%s is given twice", key)
		}
		seen[key] = true
		switch key {
		case "name", "namespace":
			if errs := validation.IsDNS1123Label(val); len(errs) > 0 {
				return bad("%s %q: %s", key, val, strings.Join(errs, "; "))
			}
			if key == "name" {
				g.Name = val
			} else {
				g.Namespace = val
			}
		case "selector":
			g.Labels = map[string]string{}
			for _, kv := range strings.Split(val, ";") {
				lk, lv, ok := strings.Cut(kv, "=")
				if !ok {
					return bad("selector %q is not KEY=VALUE", kv)
				}
				if errs := validation.IsQualifiedName(lk); len(errs) > 0 {
					return bad("selector key %q: %s", lk, strings.Join(errs, "; "))
				}
				if errs := validation.IsValidLabelValue(lv); len(errs) > 0 {
					return bad("selector %s value %q: %s", lk, lv, strings.Join(errs, "; "))
				}
				g.Labels[lk] = lv
			}
		case "ports":
			numbers := map[int]bool{}
			for _, p := range strings.Split(val, ";") {
				name, num, named := strings.Cut(p, ":")
				if !named {
					name, num = "", p
				}
				n, err := strconv.Atoi(num)
				if err != nil || n < 1 || n > 65535 {
					return bad("port %q: the number must be 1 to 65535", p)
				}
				if named {
					if errs := validation.IsValidPortName(name); len(errs) > 0 {
						return bad("port %q: name %q: %s", p, name, strings.Join(errs, "; "))
					}
				}
				if numbers[n] {
					return bad("port %d is given twice", n)
				}
				numbers[n] = true
				// The translation routes to the Service port; the pod port (TargetPort) plays no part.
				g.Ports = append(g.Ports, asm.GatewayPort{Number: n, Name: name, Protocol: "TCP"})
			}
		default:
			return bad("unknown key %q", key)
		}
	}
	for _, k := range []string{"name", "namespace", "selector", "ports"} {
		if !seen[k] {
			return bad("%s is missing", k)
		}
	}
	return g, nil
}

// clusterGatewayLookup returns a lookup of egress gateways in the cluster of the kubeconfig and
// context (empty: the defaults, as kubectl's).
func clusterGatewayLookup(kubeconfig, kubeContext string) func(context.Context, string) (asm.Gateway, error) {
	return func(ctx context.Context, name string) (asm.Gateway, error) {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
		if err != nil {
			return asm.Gateway{}, fmt.Errorf("--kubeconfig/--context: %w", err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return asm.Gateway{}, fmt.Errorf("--kubeconfig/--context: %w", err)
		}
		return clusterGateway(ctx, cs, name)
	}
}

// clusterGateway reads egress gateway name from the cluster: its Service (the gateway's name, in
// any namespace, exactly one), whose selector selects the gateway's pods and whose ports are the
// gateway's.
func clusterGateway(ctx context.Context, cs kubernetes.Interface, name string) (asm.Gateway, error) {
	list, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return asm.Gateway{}, fmt.Errorf("egress gateway %q: listing its Service: %w", name, err)
	}
	var found []corev1.Service
	var namespaces []string
	for _, s := range list.Items {
		if s.Name == name { // filtered here too: not every client honours the field selector
			found = append(found, s)
			namespaces = append(namespaces, s.Namespace)
		}
	}
	switch {
	case len(found) == 0:
		return asm.Gateway{}, fmt.Errorf("egress gateway %q: the cluster has no Service of that name (describe the gateway with --gateway)", name)
	case len(found) > 1:
		return asm.Gateway{}, fmt.Errorf("egress gateway %q: the cluster has a Service of that name in each of %v; name the one meant with --gateway", name, namespaces)
	}
	svc := found[0]
	if len(svc.Spec.Selector) == 0 {
		return asm.Gateway{}, fmt.Errorf("egress gateway %q: Service %s/%s has no selector to select the gateway's pods by", name, svc.Namespace, name)
	}
	g := asm.Gateway{Name: name, Namespace: svc.Namespace, Labels: svc.Spec.Selector}
	for _, p := range svc.Spec.Ports {
		g.Ports = append(g.Ports, asm.GatewayPort{Number: int(p.Port), Name: p.Name, Protocol: string(p.Protocol), TargetPort: p.TargetPort.IntValue()})
	}
	return g, nil
}
