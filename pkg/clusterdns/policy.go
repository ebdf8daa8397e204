package clusterdns

import (
	"fmt"
	"sort"
	"strings"
)

// Mode says whose DNS a hermetic run changes (the --cluster-dns flag).
type Mode string

const (
	// ModeAuto is the flag's default: ModeOverride on a kind cluster (egressconf's own), else
	// ModeScoped.
	ModeAuto Mode = "auto"
	// ModeScoped points only the run's own pods (fixtures, the DNS check pod, the egress gateways
	// the run installed) at the stand-in's resolver; the cluster's DNS is not touched.
	ModeScoped Mode = "scoped"
	// ModeOverride rewrites kube-system/coredns so that every pod of the cluster resolves the
	// external hosts to the stand-in for the run.
	ModeOverride Mode = "override"
)

// Flag is the command-line flag that chooses the mode; errors name it.
const Flag = "--cluster-dns"

// ParseMode reads a --cluster-dns value ("" is auto).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeScoped, ModeOverride:
		return m, nil
	}
	return "", fmt.Errorf("%s %q: want scoped, override or auto", Flag, s)
}

// Situation is what Decide needs to know about the run and the cluster.
type Situation struct {
	// Requested is the flag's value.
	Requested Mode
	// OwnCluster: a kind cluster of egressconf's backend, where nobody else runs.
	OwnCluster bool
	// ForeignGateways are the egress gateways (namespace/name) the run uses that it did not
	// install: they resolve with the cluster's DNS, and scoped DNS cannot reach them.
	ForeignGateways []string
}

// Decide returns the mode a hermetic run uses, or an error naming the gateways and the flag when
// scoped DNS cannot serve the run and the cluster-wide override was not asked for.
func Decide(s Situation) (Mode, error) {
	m := s.Requested
	if m == "" || m == ModeAuto {
		m = ModeScoped
		if s.OwnCluster {
			m = ModeOverride
		}
	}
	if m == ModeScoped && len(s.ForeignGateways) > 0 {
		g := append([]string(nil), s.ForeignGateways...)
		sort.Strings(g)
		return "", fmt.Errorf("egress gateway(s) %s were not installed by this run: they resolve with the cluster's DNS, "+
			"so the catalog's hosts would not reach the stand-in through them, and this run does not change the cluster's DNS without being asked. "+
			"Pass %s %s to point the whole cluster's DNS (kube-system/coredns) at the stand-in for the run "+
			"(every pod of the cluster then resolves the catalog's hosts to it), or --install-istio so the run installs gateways of its own",
			strings.Join(g, ", "), Flag, ModeOverride)
	}
	return m, nil
}

// OverridePlan says, for the cluster-wide override, which names every pod of the cluster resolves
// where during the run: printed before CoreDNS changes and kept in the run's reports.
func OverridePlan(hosts []string, target, targetIP string) string {
	h := append([]string(nil), hosts...)
	sort.Strings(h)
	ip := ""
	if targetIP != "" {
		ip = " (" + targetIP + ")"
	}
	return fmt.Sprintf("%s %s: while the run lasts every pod of the cluster, in every namespace, resolves %s to the stand-in %s%s, "+
		"served with the run's test CA; every other name resolves as before; %s/%s is restored at the end",
		Flag, ModeOverride, strings.Join(h, ", "), target, ip, DefaultNamespace, DefaultConfigMap)
}

// ClusterDomain is the cluster's DNS domain as the Corefile's kubernetes plugin serves it
// ("cluster.local" when the Corefile names none): the search list a scoped pod needs.
func ClusterDomain(corefile string) string {
	for _, line := range strings.Split(corefile, "\n") {
		t := tokens(line)
		if len(t) < 2 || t[0] != "kubernetes" {
			continue
		}
		for _, z := range t[1:] {
			if z == "{" {
				break
			}
			z = strings.TrimSuffix(strings.ToLower(z), ".")
			if z != "" && !strings.HasSuffix(z, ".arpa") {
				return z
			}
		}
	}
	return "cluster.local"
}
