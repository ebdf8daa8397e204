package accesslog

import (
	"maps"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/outcome"
)

// Lines as the BigBang seed shows them.
const (
	rbacLine    = `[2022-05-10T21:51:49.396Z] "HEAD / HTTP/2" 403 - rbac_access_denied_matched_policy[ns[istio-system]-policy[external-deny-developer-yahoo-com]-rule[0]] - "-" 0 0 0 - "10.100.0.6" "curl/7.83.0-DEV" "a503ba03-f09a-914d-85a4-995a0c1d5b16" "developer.yahoo.com" "-" outbound|443||developer.yahoo.com - 10.100.2.6:8080 10.100.0.6:58370 developer.yahoo.com -`
	sidecarLine = `[2022-05-10T20:36:16.973Z] "HEAD / HTTP/1.1" 200 - via_upstream - "-" 0 0 421 420 "-" "curl/7.83.0-DEV" "5ab0ed38-2e77-92a8-bb44-0a07573cd530" "developers.google.com" "10.100.2.6:8080" outbound|80|google|istio-egressgateway.istio-system.svc.cluster.local 10.100.0.5:48236 173.194.217.101:80 10.100.0.5:48764 - -`
	tcpLine     = `[2024-01-01T00:00:00.000Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 1.2.3.4:443 10.0.0.1:5000 www.httpbin.org -`
	jsonLine    = `{"upstream_cluster":"BlackHoleCluster","response_flags":"UH","response_code":0,"authority":null,"requested_server_name":"www.httpbin.org"}`
)

func TestParseSeedLines(t *testing.T) {
	log := strings.Join([]string{"2024-01-01T00:00:00Z info envoy starting", rbacLine, sidecarLine, tcpLine, jsonLine, `{"level":"info","msg":"x"}`}, "\n")
	entries, err := Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d entries, want 4", len(entries))
	}
	checks := []outcome.LogExpected{
		{Fields: map[string]string{"response_code_details": "rbac_access_denied_matched_policy[ns[istio-system]-policy[external-deny-developer-yahoo-com]-rule[0]]", "response_code": "403", "upstream_cluster": "outbound|443||developer.yahoo.com", "requested_server_name": "developer.yahoo.com", "protocol": "HTTP/2"}},
		{Fields: map[string]string{"upstream_cluster": "outbound|80|google|istio-egressgateway.istio-system.svc.cluster.local", "authority": "developers.google.com", "method": "HEAD", "route_name": "-"}},
		{Fields: map[string]string{"upstream_cluster": "BlackHoleCluster", "response_flags": "UH", "method": "-", "requested_server_name": "www.httpbin.org"}},
		{Fields: map[string]string{"upstream_cluster": "BlackHoleCluster", "response_flags": "UH", "response_code": "0", "authority": "-"}},
	}
	for i, c := range checks {
		if !c.Matches(entries[i]) {
			t.Errorf("entry %d: %v does not match %v", i, entries[i], c.Fields)
		}
	}
	if err := outcome.MatchLog(outcome.LogExpected{Fields: map[string]string{"upstream_cluster": "PassthroughCluster"}}, entries); err == nil {
		t.Error("matched an entry that is not there")
	}
}

func TestParseTruncatedLineIsAnError(t *testing.T) {
	if _, _, err := ParseLine(`[2022-05-10T21:51:49.396Z] "HEAD / HTTP/2" 403 -`); err == nil {
		t.Fatal("truncated entry accepted")
	}
}

func FuzzParseLine(f *testing.F) {
	for _, l := range []string{rbacLine, sidecarLine, tcpLine, jsonLine} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, ok, err := ParseLine(line)
		if ok && err == nil && e == nil {
			t.Fatal("ok without entry")
		}
		if !ok || err != nil {
			return
		}
		// A TEXT entry has every field of the format: a check of a field that is "" must never
		// match an entry that lacks it.
		if !strings.HasPrefix(strings.TrimSpace(line), "{") {
			for _, name := range outcome.LogFields {
				if _, has := e[name]; !has {
					t.Fatalf("text entry without field %s: %q", name, line)
				}
			}
		}
		// Surrounding whitespace (a log line's newline) changes nothing.
		e2, ok2, err2 := ParseLine("  " + line + "\n")
		if !ok2 || err2 != nil || !maps.Equal(e, e2) {
			t.Fatalf("%q parses differently with surrounding whitespace: %v %v", line, e2, err2)
		}
	})
}
