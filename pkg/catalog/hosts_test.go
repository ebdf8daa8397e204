package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const catalogHostsYAML = `hosts:
- name: www.aliyun.com
  http: {status: 200}
  https: {status: 200}
- name: httpbin.org
  http: {httpbin: true}
  https: {httpbin: true}
`

// hostsScenario is a scenario with the given spec.hosts (YAML under "  hosts:", may be empty)
// and one probe check per curl (each with the given extra check fields).
func hostsScenario(group, specHosts string, checks ...string) string {
	s := `apiVersion: egressconf.io/v1alpha1
kind: Scenario
metadata: {name: ` + strings.ToLower(group) + `, group: ` + group + `}
spec:
  title: t
  profile: istio-native
  sources: [{doc: d}]
  meshPolicy: ALLOW_ANY
  namespaces: [{name: n}]
  workloads: [{name: sleep, namespace: n, fixture: sleep}, {name: nginx, namespace: n, fixture: nginx}]
`
	if specHosts != "" {
		s += "  hosts:\n" + specHosts
	}
	s += "  steps:\n    - name: one\n      expect:\n"
	for i, c := range checks {
		s += "        - id: " + group + "-0" + string(rune('1'+i)) + "\n          kind: derived\n          checks:\n" +
			"            - from: sleep@n\n              expect: {result: 200}\n" + c
	}
	return s
}

// writeCatalog writes files (path relative to a new root) and returns the root.
func writeCatalog(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const apiHost = `    - name: api.example.test
      ports: [{port: 8080, protocol: http}]
      http: {status: 200, body: "api\n"}
`

func TestLoadMergesCatalogAndScenarioHosts(t *testing.T) {
	root := writeCatalog(t, map[string]string{
		HostsFile:               catalogHostsYAML,
		"g01-a/" + ScenarioFile: hostsScenario("A1", apiHost, "              curl: curl http://api.example.test:8080/x\n"),
		// The same host again, identical: one host.
		"g02-b/" + ScenarioFile: hostsScenario("B1", strings.ReplaceAll(apiHost, "api.example.test", "API.Example.Test."), "              curl: curl http://www.aliyun.com\n"),
	})
	c, err := LoadPaths(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range c.Hosts {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "www.aliyun.com httpbin.org api.example.test" {
		t.Errorf("Catalog.Hosts = %s", got)
	}
	if got := len(c.Scenarios[0].ExternalHosts()); got != 3 {
		t.Errorf("A1's external hosts: %d, want the catalog's 2 and its own", got)
	}
	if _, file, ok := c.Scenarios[1].ExternalHost("httpbin.org"); !ok || file != filepath.Join(root, HostsFile) {
		t.Errorf("httpbin.org declared in %q", file)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Errorf("valid catalog: %v", err)
	}

	// A scenario directory (or file) given alone takes the hosts.yaml above it.
	for _, p := range []string{filepath.Join(root, "g01-a"), filepath.Join(root, "g01-a", ScenarioFile)} {
		one, err := LoadPaths(p)
		if err != nil || len(one.Hosts) != 3 {
			t.Errorf("LoadPaths(%s): %v, %d hosts", p, err, len(one.Hosts))
		}
	}
}

func TestLoadHostErrorsNameTheFiles(t *testing.T) {
	other := `    - name: www.aliyun.com
      http: {status: 301, redirect: {status: 301, to: "https://www.aliyun.com"}}
      https: {status: 200}
`
	cases := map[string]struct {
		files map[string]string
		want  []string
	}{
		"declared twice differently": {map[string]string{
			HostsFile:               catalogHostsYAML,
			"g01-a/" + ScenarioFile: hostsScenario("A1", "    - name: www.aliyun.com\n      http: {status: 404}\n      https: {status: 200}\n", "              curl: curl http://www.aliyun.com\n"),
		}, []string{"g01-a/scenario.yaml (spec.hosts): host www.aliyun.com is declared differently in ", "/" + HostsFile}},
		"two scenarios disagree": {map[string]string{
			"g01-a/" + ScenarioFile: hostsScenario("A1", apiHost, "              curl: curl http://api.example.test:8080\n"),
			"g02-b/" + ScenarioFile: hostsScenario("B1", strings.ReplaceAll(apiHost, `"api\n"`, `"other\n"`), "              curl: curl http://api.example.test:8080\n"),
		}, []string{"g02-b/scenario.yaml (spec.hosts): host api.example.test is declared differently in ", "g01-a/scenario.yaml (spec.hosts)"}},
		"one port two protocols": {map[string]string{
			HostsFile:               catalogHostsYAML,
			"g01-a/" + ScenarioFile: hostsScenario("A1", "    - name: tls.example.test\n      ports: [{port: 80, protocol: https}]\n      https: {status: 200}\n", "              curl: curl https://tls.example.test:80\n"),
		}, []string{"g01-a/scenario.yaml (spec.hosts): host tls.example.test: port 80 is https, but http for host www.aliyun.com in ", HostsFile}},
		"bad hosts.yaml": {map[string]string{
			HostsFile:               "hosts:\n- name: a.example\n  ports: [{port: 8080, protocol: http}]\n  http: {status: 200}\n  https: {status: 200}\n",
			"g01-a/" + ScenarioFile: hostsScenario("A1", "", "              curl: curl http://a.example:8080\n"),
		}, []string{HostsFile + ": hosts[0] (a.example).https: no port has protocol https"}},
		"unknown field in hosts.yaml": {map[string]string{
			HostsFile:               "hosts:\n- name: a.example\n  port: 8080\n",
			"g01-a/" + ScenarioFile: hostsScenario("A1", "", "              curl: curl http://a.example\n"),
		}, []string{HostsFile + ": hosts: yaml: unmarshal errors:", "field port not found"}},
		"bad spec.hosts": {map[string]string{
			"g01-a/" + ScenarioFile: hostsScenario("A1", other, "              curl: curl http://www.aliyun.com\n"),
		}, []string{"g01-a/scenario.yaml: spec.hosts[0] (www.aliyun.com).http.status: not allowed with redirect"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadPaths(writeCatalog(t, c.files))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestValidateUndeclaredHosts: a probe's host must be declared with the curl's port and
// protocol, except IP addresses, in-cluster names, and a check marked unknownHost.
func TestValidateUndeclaredHosts(t *testing.T) {
	root := writeCatalog(t, map[string]string{
		HostsFile: catalogHostsYAML,
		"g01-a/" + ScenarioFile: hostsScenario("A1", apiHost,
			"              curl: curl http://edition.cnn.com/\n",
			"              curl: curl http://api.example.test/\n",
			"              curl: curl https://api.example.test:8080/\n",
			"              curl: curl http://nope.example.test\n              unknownHost: true\n",
			"              curl: curl http://httpbin.org\n              unknownHost: true\n",
			"              curl: curl http://nginx/\n",
		),
	})
	c, err := LoadPaths(root)
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(c, ValidateOptions{})
	if err == nil {
		t.Fatal("valid")
	}
	file := filepath.Join(root, "g01-a", ScenarioFile)
	for _, want := range []string{
		file + ": line 18 A1-01 (spec.steps[0].expect[0]).checks[0].curl: host edition.cnn.com is not declared in " + filepath.Join(root, HostsFile) + " or in the scenario's spec.hosts",
		"A1-02 (spec.steps[0].expect[1]).checks[0].curl: host api.example.test (declared in " + file + " (spec.hosts)) does not declare port 80 (its ports: 8080/http)",
		"A1-03 (spec.steps[0].expect[2]).checks[0].curl: port 8080 of host api.example.test (declared in " + file + " (spec.hosts)) is http, the curl uses https",
		"A1-05 (spec.steps[0].expect[4]).checks[0].curl: unknownHost: host httpbin.org is declared in " + filepath.Join(root, HostsFile),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("%d errors, want 4 (unknownHost on an undeclared host and in-cluster names are fine):\n%v", n, err)
	}

	ok := writeCatalog(t, map[string]string{
		HostsFile: catalogHostsYAML,
		"g01-a/" + ScenarioFile: hostsScenario("A1", "",
			"              curl: curl http://nginx/\n",
			"              curl: curl http://nginx.n:8080/\n",
			"              curl: curl http://nginx.n.svc.cluster.local/\n",
			"              curl: curl http://istio-egressgateway.istio-system/\n",
			"              curl: curl http://10.0.0.1:9000/\n",
			"              curl: curl -k https://[fd00::1]/\n",
		),
	})
	if c, err = LoadPaths(ok); err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Errorf("in-cluster names and addresses: %v", err)
	}

	// A catalog without hosts.yaml: the message says where the file belongs.
	bare := writeCatalog(t, map[string]string{"g01-a/" + ScenarioFile: hostsScenario("A1", "", "              curl: curl http://www.aliyun.com\n")})
	if c, err = LoadPaths(bare); err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, ValidateOptions{}); err == nil || !strings.Contains(err.Error(), "host www.aliyun.com is not declared: the catalog has no hosts.yaml (at its root, beside the scenario directories)") {
		t.Errorf("no hosts.yaml: %v", err)
	}
}

// TestBuiltinCatalogHosts: the built-in catalog declares every host it curls, and its hosts.yaml
// is the stand-in's list.
func TestBuiltinCatalogHosts(t *testing.T) {
	c, err := LoadPaths("../../suites/catalog")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hosts) != 6 {
		t.Errorf("%d hosts, want the 6 of suites/catalog/hosts.yaml", len(c.Hosts))
	}
	if err := Validate(c, ValidateOptions{}); err != nil {
		t.Errorf("the built-in catalog: %v", err)
	}
}
