package main

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

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
