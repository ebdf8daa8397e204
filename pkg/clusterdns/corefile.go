// Package clusterdns points the external host names of a run at the stand-in internet's Service
// by editing CoreDNS's configuration (ConfigMap kube-system/coredns, key Corefile, as on kind and
// on the local cluster), and puts the original back afterwards, byte for byte.
//
// # Why `rewrite name exact`, not a `hosts` block
//
// For every host the root server block (`.:53 { ... }`) gets one line
//
//	rewrite name exact www.aliyun.com internet.egressconf-internet.svc.cluster.local
//
// between two marker comments. CoreDNS runs the rewrite plugin before hosts and kubernetes
// whatever the order in the Corefile, so the rewritten question is answered by the kubernetes
// plugin with the Service's ClusterIP (or NODATA for AAAA), and for `exact` rules CoreDNS rewrites
// the answer's owner name back to the name asked (documented for the rewrite plugin of CoreDNS
// 1.12-1.14), so resolvers see an answer for www.aliyun.com. The rewrite directive may appear any
// number of times in a block (all rules are collected), so the lines never collide with a
// cluster's own rewrites. A `hosts` block would need the ClusterIP up front (and a new edit
// whenever the Service is recreated), and the hosts plugin may appear only once per server block:
// on clusters that already have one (minikube's host.minikube.internal, for example) egressconf
// would have to edit someone else's block instead of adding its own.
//
// CoreDNS notices the change through its `reload` plugin (present on kind and the local cluster)
// once the kubelet has refreshed the mounted ConfigMap: allow a minute or two, and poll.
package clusterdns

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

const (
	markerBegin = "# egressconf:begin"
	markerEnd   = "# egressconf:end"
	// defaultOwner marks a block written without a run id.
	defaultOwner = "-"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

// ConflictError is returned when the Corefile already carries configuration egressconf did not
// write for one of the names it would override, or a block of another egressconf run.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string {
	return "clusterdns: refusing to change the Corefile: " + e.Reason
}

// serverBlock is a top-level block of a Corefile, by line index.
type serverBlock struct {
	keys        []string
	open, close int // line of the header ("keys {") and of the closing "}"
}

// parseBlocks finds the top-level server blocks. It understands comments (#) and quoted strings
// enough to count braces; a Corefile it cannot balance is an error.
func parseBlocks(lines []string) ([]serverBlock, error) {
	var blocks []serverBlock
	depth := 0
	var pending []string // keys seen at depth 0 before a "{"
	cur := serverBlock{}
	for i, raw := range lines {
		toks := tokens(raw)
		if depth == 0 && len(pending) == 0 && len(toks) > 0 && toks[0] == "import" {
			continue // a top-level import (k3s: import /etc/coredns/custom/*.server)
		}
		for _, t := range toks {
			switch t {
			case "{":
				if depth == 0 {
					if len(pending) == 0 {
						return nil, fmt.Errorf("line %d: block without server keys", i+1)
					}
					cur = serverBlock{keys: pending, open: i}
					pending = nil
				}
				depth++
			case "}":
				depth--
				if depth < 0 {
					return nil, fmt.Errorf("line %d: unbalanced }", i+1)
				}
				if depth == 0 {
					cur.close = i
					blocks = append(blocks, cur)
				}
			default:
				if depth == 0 {
					pending = append(pending, t)
				}
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced { at end of Corefile")
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("server keys %v without a block", pending)
	}
	return blocks, nil
}

// tokens splits a line into words, "{" and "}", dropping comments; quoted strings are one word.
func tokens(line string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	inQuote := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(line) {
				i++
				b.WriteByte(line[i])
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
			b.WriteByte(c)
		case c == '#':
			flush()
			return out
		case c == '{' || c == '}':
			flush()
			out = append(out, string(c))
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return out
}

// zoneOf parses a server key ("dns://.:53", ".:53", "example.org", "example.org:5353") into its
// zone (lower case, with trailing dot) and port ("" when absent).
func zoneOf(key string) (zone, port string) {
	for _, scheme := range []string{"dns://", "tls://", "https://", "grpc://", "quic://", "https3://"} {
		key = strings.TrimPrefix(key, scheme)
	}
	if i := strings.LastIndex(key, ":"); i >= 0 {
		key, port = key[:i], key[i+1:]
	}
	zone = strings.ToLower(key)
	if !strings.HasSuffix(zone, ".") {
		zone += "."
	}
	return zone, port
}

func servesPort53(port string) bool { return port == "" || port == "53" }

// rootBlock is the server block for zone "." on port 53.
func rootBlock(blocks []serverBlock) (serverBlock, error) {
	for _, b := range blocks {
		for _, k := range b.keys {
			if z, p := zoneOf(k); z == "." && servesPort53(p) {
				return b, nil
			}
		}
	}
	return serverBlock{}, errors.New("clusterdns: the Corefile has no root server block (\".:53 {\")")
}

type marked struct {
	begin, end int // line indexes, inclusive
	owner      string
}

// findMarked finds egressconf blocks; begin without end (or the reverse) is an error.
func findMarked(lines []string) ([]marked, error) {
	var out []marked
	open := -1
	owner := ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, markerBegin):
			if open >= 0 {
				return nil, &ConflictError{fmt.Sprintf("line %d: egressconf block opened twice (lines %d and %d); the Corefile was edited by hand", i+1, open+1, i+1)}
			}
			open, owner = i, markerOwner(t, markerBegin)
		case strings.HasPrefix(t, markerEnd):
			if open < 0 {
				return nil, &ConflictError{fmt.Sprintf("line %d: egressconf block end without a begin; the Corefile was edited by hand", i+1)}
			}
			out = append(out, marked{begin: open, end: i, owner: owner})
			open = -1
		}
	}
	if open >= 0 {
		return nil, &ConflictError{fmt.Sprintf("line %d: egressconf block without an end; the Corefile was edited by hand", open+1)}
	}
	return out, nil
}

func markerOwner(line, marker string) string {
	rest := strings.TrimSpace(strings.TrimPrefix(line, marker))
	for _, f := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(f, "run="); ok {
			return v
		}
	}
	return ""
}

// Strip removes every egressconf block from corefile. It reports the owners (run ids) found.
// Since egressconf only ever inserts whole lines, Strip(Apply(c)) == c byte for byte.
func Strip(corefile string) (stripped string, owners []string, err error) {
	lines := strings.Split(corefile, "\n")
	ms, err := findMarked(lines)
	if err != nil {
		return "", nil, err
	}
	if len(ms) == 0 {
		return corefile, nil, nil
	}
	var keep []string
	next := 0
	for _, m := range ms {
		keep = append(keep, lines[next:m.begin]...)
		next = m.end + 1
		owners = append(owners, m.owner)
	}
	keep = append(keep, lines[next:]...)
	return strings.Join(keep, "\n"), owners, nil
}

// Apply returns corefile with an egressconf block for owner (a run id; "" for none) inserted at
// the top of the root server block: one `rewrite name exact HOST TARGET` per host. corefile must
// not already carry an egressconf block (Strip it first). It refuses (ConflictError) when the
// root block already mentions one of the hosts (a rewrite, hosts or template entry egressconf
// did not write), when another port-53 server block is authoritative for one of them (queries
// would never reach the root block), and when target is outside the zones of the root block's
// kubernetes plugin (the rewritten name would not resolve).
func Apply(corefile string, hosts []string, target, owner string) (string, error) {
	if owner == "" {
		owner = defaultOwner
	}
	if strings.ContainsAny(owner, " \t\r\n#") {
		return "", fmt.Errorf("clusterdns: run id %q has spaces or #", owner)
	}
	target = strings.TrimSuffix(strings.ToLower(target), ".")
	if !nameRE.MatchString(target) {
		return "", fmt.Errorf("clusterdns: target %q is not a DNS name", target)
	}
	if len(hosts) == 0 {
		return "", errors.New("clusterdns: no hosts to override")
	}
	names := make([]string, 0, len(hosts))
	seen := map[string]bool{}
	for _, h := range hosts {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if !nameRE.MatchString(n) {
			return "", fmt.Errorf("clusterdns: host %q is not a DNS name", h)
		}
		if n == target {
			return "", fmt.Errorf("clusterdns: host %q is the target itself", h)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}

	lines := strings.Split(corefile, "\n")
	if ms, err := findMarked(lines); err != nil {
		return "", err
	} else if len(ms) > 0 {
		return "", &ConflictError{fmt.Sprintf("line %d: the Corefile already carries an egressconf block (run %s)", ms[0].begin+1, ms[0].owner)}
	}
	blocks, err := parseBlocks(lines)
	if err != nil {
		return "", fmt.Errorf("clusterdns: cannot read the Corefile: %w", err)
	}
	root, err := rootBlock(blocks)
	if err != nil {
		return "", err
	}
	if root.open == root.close {
		return "", fmt.Errorf("clusterdns: line %d: a root server block on one line is not supported", root.open+1)
	}

	// Another port-53 server block for a zone containing a host takes that host's queries.
	for _, b := range blocks {
		if b.open == root.open {
			continue
		}
		for _, k := range b.keys {
			z, p := zoneOf(k)
			if z == "." || !servesPort53(p) {
				continue
			}
			for _, n := range names {
				if n+"." == z || strings.HasSuffix(n+".", "."+z) {
					return "", &ConflictError{fmt.Sprintf("line %d: server block %q answers for %s, so the root block's rewrite would never see it", b.open+1, k, n)}
				}
			}
		}
	}

	// The root block must not already mention a host, and must resolve the target.
	var kubeZones []string
	depth := 0
	for i := root.open + 1; i < root.close; i++ {
		toks := tokens(lines[i])
		if depth == 0 && len(toks) > 0 && toks[0] == "kubernetes" {
			for _, t := range toks[1:] {
				if t == "{" {
					break
				}
				kubeZones = append(kubeZones, t)
			}
			if len(kubeZones) == 0 { // "kubernetes" alone: the server block's zones (".")
				kubeZones = []string{"."}
			}
		}
		for _, t := range toks {
			switch t {
			case "{":
				depth++
			case "}":
				depth--
			}
			tl := strings.TrimSuffix(strings.ToLower(strings.Trim(t, `"`)), ".")
			if seen[tl] {
				return "", &ConflictError{fmt.Sprintf("line %d: the root server block already mentions %s (%q); egressconf did not write that, so it will not override it", i+1, tl, strings.TrimSpace(lines[i]))}
			}
		}
	}
	if len(kubeZones) == 0 {
		return "", fmt.Errorf("clusterdns: the root server block has no kubernetes plugin to resolve %s", target)
	}
	covered := false
	for _, z := range kubeZones {
		zz, _ := zoneOf(z)
		if zz == "." || strings.HasSuffix(target+".", "."+zz) {
			covered = true
		}
	}
	if !covered {
		return "", fmt.Errorf("clusterdns: target %s is outside the kubernetes plugin's zones %v: check the cluster domain", target, kubeZones)
	}

	indent := "    "
	for i := root.open + 1; i < root.close; i++ {
		if t := strings.TrimLeft(lines[i], " \t"); t != "" && t != "\r" {
			indent = lines[i][:len(lines[i])-len(t)]
			break
		}
	}
	block := []string{indent + markerBegin + " run=" + owner + " (stand-in internet; removed when the run ends; do not edit)"}
	for _, n := range names {
		block = append(block, indent+"rewrite name exact "+n+" "+target)
	}
	block = append(block, indent+markerEnd+" run="+owner)

	out := make([]string, 0, len(lines)+len(block))
	out = append(out, lines[:root.open+1]...)
	out = append(out, block...)
	out = append(out, lines[root.open+1:]...)
	return strings.Join(out, "\n"), nil
}
