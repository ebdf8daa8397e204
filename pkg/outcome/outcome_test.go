package outcome

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestResultsYAML(t *testing.T) {
	var e struct {
		A Results `yaml:"a"`
		B Results `yaml:"b"`
		C Results `yaml:"c"`
	}
	if err := yaml.Unmarshal([]byte("a: 301\nb: reset\nc: [502, 403]\n"), &e); err != nil {
		t.Fatal(err)
	}
	if e.A.String() != "301" || e.B.String() != "reset" || e.C.String() != "502 or 403" {
		t.Fatalf("%v %v %v", e.A, e.B, e.C)
	}
	for _, bad := range []string{"a: 99", "a: resets", "a: {x: 1}", "a: [[1]]"} {
		if err := yaml.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func exp(s string) *Expected {
	var e Expected
	if err := yaml.Unmarshal([]byte(s), &e); err != nil {
		panic(err)
	}
	return &e
}

func TestMatch(t *testing.T) {
	ok := Observed{HTTPCode: 403, HTTPVersion: "1.1", Headers: map[string]string{"content-length": "19", "server": "envoy"}, Body: "RBAC: access denied"}
	cases := []struct {
		e    *Expected
		o    Observed
		fail string
	}{
		{exp("result: 403\nheaders: {Content-Length: '19', server: envoy}\nbodyContains: 'RBAC: access denied'"), ok, ""},
		{exp("result: 403\nheaders: {server: istio-envoy}"), ok, "expected header server: istio-envoy, observed server: envoy"},
		{exp("result: 403\nheaders: {x-missing: a}"), ok, "observed no such header"},
		{exp("result: 200"), ok, "expected 200, observed 403"},
		{exp("result: [502, 403]"), ok, ""},
		{exp("result: 403\nhttpVersion: '2'"), ok, "expected HTTP/2"},
		{exp("result: 403\nbodyMatches: '^RBAC: .* denied$'"), ok, ""},
		{exp("result: 403\nbodyMatches: '^ok$'"), ok, "to match"},
		// A status needs curl exit 0: an HTTP code with a failed transfer is not that status.
		{exp("result: 200"), Observed{HTTPCode: 200, ExitCode: 18}, "observed http 200 exit 18"},
		{exp("result: reset"), Observed{ExitCode: 35}, ""},
		{exp("result: reset"), Observed{ExitCode: 56}, ""},
		{exp("result: reset"), Observed{ExitCode: 52}, ""},
		{exp("result: reset"), Observed{ExitCode: 7}, "expected reset, observed refused (exit 7)"},
		{exp("result: reset"), Observed{ExitCode: 6}, "observed http 000 exit 6"},
		{exp("result: timeout"), Observed{ExitCode: 28}, ""},
		{exp("result: timeout"), Observed{ExitCode: 35}, "expected timeout, observed reset"},
	}
	for i, c := range cases {
		err := Match(c.e, c.o)
		switch {
		case c.fail == "" && err != nil:
			t.Errorf("case %d: %v", i, err)
		case c.fail != "" && (err == nil || !strings.Contains(err.Error(), c.fail)):
			t.Errorf("case %d: error %v, want %q", i, err, c.fail)
		}
	}
}

func TestPositive(t *testing.T) {
	for s, want := range map[string]bool{"result: 200": true, "result: 301": true, "result: 403": false, "result: reset": false, "result: [502, 403]": false} {
		if got := exp(s).Positive(); got != want {
			t.Errorf("%s: Positive %v", s, got)
		}
	}
}

func TestLogExpectedValidate(t *testing.T) {
	if err := (LogExpected{Fields: map[string]string{"upstream_clustr": "x"}}).Validate(); err == nil || !strings.Contains(err.Error(), "upstream_clustr") {
		t.Errorf("typo accepted: %v", err)
	}
	if err := (LogExpected{}).Validate(); err == nil {
		t.Error("empty accepted")
	}
}

// TestEmptyLogFieldNeedsTheField: an expected "" matches an entry whose field is empty, never an
// entry that lacks the field.
func TestEmptyLogFieldNeedsTheField(t *testing.T) {
	l := LogExpected{Fields: map[string]string{"response_flags": ""}}
	if l.Matches(LogEntry{"upstream_cluster": "x"}) {
		t.Error(`"" matched an entry without the field`)
	}
	if !l.Matches(LogEntry{"response_flags": ""}) {
		t.Error(`"" did not match an entry with the field empty`)
	}
	if err := MatchLog(l, []LogEntry{{"upstream_cluster": "x"}}); err == nil || !strings.Contains(err.Error(), "response_flags=<absent>") {
		t.Errorf("MatchLog: %v", err)
	}
}

// TestTimeoutAcceptsRefusedOnlyWhereTheCNIRejects: exit 7 is a timeout only for an expectation
// that says the CNI rejects, and the observation names the exit seen.
func TestTimeoutAcceptsRefusedOnlyWhereTheCNIRejects(t *testing.T) {
	refused := Observed{ExitCode: 7}
	if err := Match(exp("result: timeout"), refused); err == nil || !strings.Contains(err.Error(), "refused (exit 7)") {
		t.Errorf("timeout accepted exit 7 without cniRejects: %v", err)
	}
	if err := Match(exp("result: timeout\ncniRejects: true"), refused); err != nil {
		t.Errorf("cniRejects: %v", err)
	}
	if err := Match(exp("result: timeout\ncniRejects: true"), Observed{ExitCode: 28}); err != nil {
		t.Errorf("exit 28: %v", err)
	}
	if s := (Observed{ExitCode: 28}).Summary(); s != "timeout (exit 28)" {
		t.Errorf("summary %q", s)
	}
	if err := exp("result: 403\ncniRejects: true").Validate(); err == nil || !strings.Contains(err.Error(), "cniRejects") {
		t.Errorf("cniRejects without timeout accepted: %v", err)
	}
}
