package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// capture runs f with stdout captured.
func capture(t *testing.T, f func() error) (string, error) {
	t.Helper()
	old := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		done <- b.String()
	}()
	ferr := f()
	w.Close()
	os.Stdout = old
	return <-done, ferr
}

// TestListCoversScenariosMD: every ID of SCENARIOS.md (kept in docs/, compared with ../shared by
// .ci/run) is in `egressconf list --json`, unchanged, and nothing else is.
func TestListCoversScenariosMD(t *testing.T) {
	md, err := os.ReadFile("../../docs/SCENARIOS.md")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^\| ([A-Z]+(?:-[A-Z]+)?-[0-9]{2}) \|`).FindAllStringSubmatch(string(md), -1)
	if len(want) != 62 {
		t.Fatalf("SCENARIOS.md has %d IDs, expected 62", len(want))
	}
	out, err := capture(t, func() error { return cmdList([]string{"--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var listed struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.IDs) != len(want) {
		t.Errorf("list has %d IDs, SCENARIOS.md %d", len(listed.IDs), len(want))
	}
	have := map[string]bool{}
	for _, id := range listed.IDs {
		have[id] = true
	}
	for _, m := range want {
		if !have[m[1]] {
			t.Errorf("ID %s of SCENARIOS.md is missing from the catalog", m[1])
		}
	}
}

func TestValidateBuiltin(t *testing.T) {
	out, err := capture(t, func() error { return cmdValidate(nil) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "13 scenarios, 62 expectations") {
		t.Errorf("output %q", out)
	}
}

// brokenCopy copies a built-in scenario directory and applies edit to one of its files.
func brokenCopy(t *testing.T, dir, file string, edit func(string) string) string {
	t.Helper()
	src := filepath.Join("../../suites/catalog", dir)
	root := t.TempDir()
	dst := filepath.Join(root, dir)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	// The catalog's hosts beside the copy, where a scenario directory's hosts are looked for.
	hosts, err := os.ReadFile("../../suites/catalog/hosts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "hosts.yaml"), hosts, 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		if e.Name() == file {
			edited := edit(s)
			if edited == s {
				t.Fatalf("edit of %s changed nothing", file)
			}
			s = edited
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestValidateBrokenCopies: each kind of bad input gives an error that names the file, the line
// where YAML has one, and the field or resource.
func TestValidateBrokenCopies(t *testing.T) {
	cases := []struct {
		name, dir, file string
		edit            func(string) string
		want            []string
	}{
		{"malformed YAML", "g01-deny-namespace", "scenario.yaml",
			func(s string) string { return strings.Replace(s, "  title:", "  title: [unclosed", 1) },
			[]string{"scenario.yaml", "line"}},
		{"unknown field", "g01-deny-namespace", "scenario.yaml",
			func(s string) string { return strings.Replace(s, "      apply:\n", "      aply:\n", 1) },
			[]string{"scenario.yaml", "line", `field aply is not a known field here`}},
		{"duplicate ID", "g01-deny-namespace", "scenario.yaml",
			func(s string) string { return strings.Replace(s, "id: DENYNS-02", "id: DENYNS-01", 1) },
			[]string{"scenario.yaml", "duplicate expectation ID DENYNS-01"}},
		{"probe from undeclared workload", "g01-deny-namespace", "scenario.yaml",
			func(s string) string {
				return strings.Replace(s, "from: sleep@demo-frontend", "from: sleep@nowhere", 1)
			},
			[]string{"scenario.yaml", "DENYNS-01", "probe from undeclared workload sleep@nowhere"}},
		{"bad outcome", "g01-deny-namespace", "scenario.yaml",
			func(s string) string { return strings.Replace(s, "result: 301", "result: 3011", 1) },
			[]string{"scenario.yaml", "line", `result "3011"`}},
		{"unsupported curl flag", "g01-deny-namespace", "scenario.yaml",
			func(s string) string {
				return strings.Replace(s, `curl: "curl -I http://www.aliyun.com"`, `curl: "curl -x proxy:3128 -I http://www.aliyun.com"`, 1)
			},
			[]string{"scenario.yaml", "DENYNS-01", "flag -x is not supported"}},
		{"undeclared external host", "g01-deny-namespace", "scenario.yaml",
			func(s string) string {
				return strings.Replace(s, `curl: "curl -I http://www.aliyun.com"`, `curl: "curl -I http://edition.cnn.com"`, 1)
			},
			[]string{"scenario.yaml", "line", "DENYNS-01", "host edition.cnn.com is not declared in", "hosts.yaml or in the scenario's spec.hosts"}},
		{"resource Istio rejects", "g01-deny-namespace", "serviceentry-aliyuncom-ext.yaml",
			func(s string) string { return strings.Replace(s, "- www.aliyun.com", "- 'not a valid host!!'", 1) },
			[]string{"serviceentry-aliyuncom-ext.yaml", "ServiceEntry istio-system/aliyuncom-ext", "rejected by Istio's validation"}},
		{"ASM policy with a bad protocol", "g02-etp-http", "egress-by-egressgateway.yaml",
			func(s string) string { return strings.Replace(s, "protocol: HTTP", "protocol: QUIC", 1) },
			[]string{"egress-by-egressgateway.yaml", "ASMEgressTrafficPolicy", "protocol"}},
		{"ASM policy naming an unknown gateway", "g02-etp-http", "egress-by-egressgateway.yaml",
			func(s string) string { return strings.Replace(s, "name: egressgateway-a", "name: nosuchgateway", 1) },
			[]string{"egress-by-egressgateway.yaml", "nosuchgateway"}},
		{"independentOf a file not applied with requires", "g01-deny-namespace", "scenario.yaml",
			func(s string) string {
				return strings.Replace(s, "        - id: DENYNS-06\n          kind: derived\n", "        - id: DENYNS-06\n          kind: derived\n          independentOf: [gateway-istio-egressgateway.yaml]\n", 1)
			},
			[]string{"scenario.yaml", "DENYNS-06", "independentOf[0]: gateway-istio-egressgateway.yaml is not a file applied with requires"}},
		{"a kind no backend can wait for", "g01-deny-namespace", "serviceentry-aliyuncom-ext.yaml",
			func(s string) string {
				return strings.Replace(strings.Replace(s, "apiVersion: networking.istio.io/v1beta1", "apiVersion: v1", 1), "kind: ServiceEntry", "kind: ConfigMap", 1)
			},
			[]string{"serviceentry-aliyuncom-ext.yaml", "kind ConfigMap", "no backend can tell when it has taken effect"}},
		{"delete of a file never applied", "g02-etp-http", "scenario.yaml",
			func(s string) string {
				return strings.Replace(s, "- file: egress-by-egressgateway.yaml\n", "- file: other.yaml\n", strings.Count(s, "- file: egress-by-egressgateway.yaml\n"))
			},
			[]string{"scenario.yaml", "other.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := brokenCopy(t, tc.dir, tc.file, tc.edit)
			_, err := capture(t, func() error { return cmdValidate([]string{dir}) })
			if err == nil {
				t.Fatal("broken copy validated")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestUnknownGroupAndIDListValidOnes(t *testing.T) {
	_, err := capture(t, func() error { return cmdRender([]string{"G99"}) })
	if err == nil || !strings.Contains(err.Error(), `unknown group "G99"`) || !strings.Contains(err.Error(), "G1 (deny-namespace)") {
		t.Errorf("render G99: %v", err)
	}
	_, err = capture(t, func() error { return cmdRun([]string{"--backend", "sim", "--id", "NOPE-01", "--reports", t.TempDir()}) })
	if err == nil || !strings.Contains(err.Error(), `unknown expectation ID "NOPE-01"`) || !strings.Contains(err.Error(), "DENYNS-01") {
		t.Errorf("run --id NOPE-01: %v", err)
	}
}

func TestRenderGroupAndASM(t *testing.T) {
	out, err := capture(t, func() error { return cmdRender([]string{"G3"}) })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ASMEgressTrafficPolicy istio-egress/egress-by-egressgateway", "kind: ServiceEntry", "kind: VirtualService", "mode: SIMPLE"} {
		if !strings.Contains(out, w) {
			t.Errorf("render G3 lacks %q", w)
		}
	}
	out, err = capture(t, func() error {
		return cmdRender([]string{"--asm", "../../suites/catalog/g05-etp-tcp/egress-by-egressgateway.yaml"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "number: 10001") {
		t.Errorf("TCP policy without a gateway port should get 10001:\n%s", out)
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name, observed string) string {
		p := filepath.Join(dir, name+".json")
		data := `{"id":"` + name + `","backend":{"Name":"sim"},"results":[{"id":"DENYNS-01","verdict":"pass","observed":"301"},{"id":"DENYNS-03","verdict":"pass","observed":"` + observed + `"}]}`
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := write("a", "403"), write("b", "403"), write("c", "502")
	if out, err := capture(t, func() error { return cmdCompare([]string{a, b}) }); err != nil || !strings.Contains(out, "2 expectations compared, 0 differ") {
		t.Fatalf("%q %v", out, err)
	}
	out, err := capture(t, func() error { return cmdCompare([]string{a, c}) })
	if err == nil || !strings.Contains(out, `DENYNS-03`) || !strings.Contains(out, `"502"`) || !strings.Contains(out, "1 differ") {
		t.Fatalf("%q %v", out, err)
	}
}

// TestCompareCapabilitySkip: an expectation one run skipped for a missing capability and the other
// observed is listed as not compared, neither agreement nor difference; a skip without a
// capability against a pass still differs.
func TestCompareCapabilitySkip(t *testing.T) {
	dir := t.TempDir()
	write := func(name, res string) string {
		p := filepath.Join(dir, name+".json")
		data := `{"id":"` + name + `","backend":{"Name":"x"},"results":[{"id":"DENYNS-01","verdict":"pass","observed":"301"},` + res + `]}`
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sim := write("sim", `{"id":"DENYNS-05","verdict":"skip","observed":"","capability":"networkpolicy"}`)
	kind := write("kind", `{"id":"DENYNS-05","verdict":"pass","observed":"refused (exit 7)"}`)
	other := write("other", `{"id":"DENYNS-05","verdict":"skip","observed":""}`)
	out, err := capture(t, func() error { return cmdCompare([]string{sim, kind}) })
	if err != nil || !strings.Contains(out, "DENYNS-05    not compared: sim skipped it") || !strings.Contains(out, "1 expectations compared, 0 differ, 1 not compared") {
		t.Fatalf("%q %v", out, err)
	}
	if out, err := capture(t, func() error { return cmdCompare([]string{other, kind}) }); err == nil || !strings.Contains(out, "1 differ") {
		t.Fatalf("a skip without a capability must differ from a pass: %q %v", out, err)
	}
}

// TestCompareEmptyIsAnError: two result sets without results compare nothing; that is an error.
func TestCompareEmptyIsAnError(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, n := range []string{"a", "b"} {
		p := filepath.Join(dir, n+".json")
		if err := os.WriteFile(p, []byte(`{"id":"`+n+`","results":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	_, err := capture(t, func() error { return cmdCompare(paths) })
	if err == nil || !strings.Contains(err.Error(), "no results") {
		t.Fatalf("compare of two empty runs: %v", err)
	}
}

// TestListOfInvalidCatalogFails: list validates what it lists.
func TestListOfInvalidCatalogFails(t *testing.T) {
	dir := brokenCopy(t, "g01-deny-namespace", "scenario.yaml", func(s string) string {
		return strings.Replace(s, "from: sleep@demo-frontend", "from: sleep@nowhere", 1)
	})
	_, err := capture(t, func() error { return cmdList([]string{"--catalog", dir}) })
	if err == nil || !strings.Contains(err.Error(), "sleep@nowhere") {
		t.Fatalf("list of an invalid catalog: %v", err)
	}
}

// TestBadScenarioFilesNamed: an empty file, non-UTF-8 text, an oversized file and a port out of
// range each give an error naming the file (and the line where there is one).
func TestBadScenarioFilesNamed(t *testing.T) {
	write := func(t *testing.T, data []byte) string {
		dir := t.TempDir()
		p := filepath.Join(dir, "scenario.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("empty", func(t *testing.T) {
		dir := write(t, nil)
		_, err := capture(t, func() error { return cmdValidate([]string{dir}) })
		if err == nil || !strings.Contains(err.Error(), "scenario.yaml") || !strings.Contains(err.Error(), "scenario.yaml: the file is empty") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("non-UTF-8", func(t *testing.T) {
		dir := write(t, []byte("apiVersion: egressconf.io/v1alpha1\nkind: Scenario\nmetadata: {name: \xff\xfe}\n"))
		_, err := capture(t, func() error { return cmdValidate([]string{dir}) })
		if err == nil || !strings.Contains(err.Error(), "scenario.yaml") || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		dir := write(t, append([]byte("# "), bytes.Repeat([]byte("x"), 2<<20)...))
		_, err := capture(t, func() error { return cmdValidate([]string{dir}) })
		if err == nil || !strings.Contains(err.Error(), "scenario.yaml") || !strings.Contains(err.Error(), "1 MiB") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("port out of range", func(t *testing.T) {
		dir := brokenCopy(t, "g01-deny-namespace", "scenario.yaml", func(s string) string {
			return strings.Replace(s, `curl: "curl -I http://www.aliyun.com"`, `curl: "curl -I http://www.aliyun.com:99999"`, 1)
		})
		_, err := capture(t, func() error { return cmdValidate([]string{dir}) })
		if err == nil || !strings.Contains(err.Error(), "scenario.yaml") || !strings.Contains(err.Error(), "port 99999") {
			t.Fatalf("%v", err)
		}
	})
}
