package standin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestBuiltinCatalogHosts: the built-in catalog's hosts.yaml loads with the documented behaviours.
func TestBuiltinCatalogHosts(t *testing.T) {
	hosts := builtinHosts(t)
	want := []string{"www.aliyun.com", "www.httpbin.org", "httpbin.org", "www.alibabacloud.com", "developers.google.com", "developer.yahoo.com"}
	if got := HostNames(hosts); !reflect.DeepEqual(got, want) {
		t.Fatalf("HostNames = %v, want %v", got, want)
	}
	byName := map[string]Host{}
	for _, h := range hosts {
		byName[h.Name] = h
	}
	a := byName["www.aliyun.com"]
	if a.HTTP.Status != 301 || a.HTTP.Headers["location"] != "https://www.aliyun.com/" || a.HTTPS.Status != 200 {
		t.Errorf("www.aliyun.com: %+v / %+v", a.HTTP, a.HTTPS)
	}
	for _, n := range []string{"httpbin.org", "www.httpbin.org"} {
		if !byName[n].HTTP.HTTPBin || !byName[n].HTTPS.HTTPBin {
			t.Errorf("%s is not httpbin on both schemes", n)
		}
	}
	for _, n := range []string{"www.alibabacloud.com", "developers.google.com", "developer.yahoo.com"} {
		if byName[n].HTTP.Status != 200 || byName[n].HTTPS.Status != 200 {
			t.Errorf("%s: %d / %d, want 200 / 200", n, byName[n].HTTP.Status, byName[n].HTTPS.Status)
		}
	}
}

func TestLoadHostsErrorsNameTheField(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"empty":   {``, "empty file"},
		"no list": {`hosts: []`, "no hosts"},
		"unknown field": {`
hosts:
- name: a.example
  http: {stauts: 200}
  https: {status: 200}`, "field stauts not found"},
		"unknown top-level field": {`
hostz: []`, "field hostz not found"},
		"status type": {`
hosts:
- name: a.example
  http: {status: "ok"}
  https: {status: 200}`, "cannot unmarshal"},
		"missing name": {`
hosts:
- http: {status: 200}
  https: {status: 200}`, "hosts[0].name: required"},
		"bad name": {`
hosts:
- name: a_b.example
  http: {status: 200}
  https: {status: 200}`, "hosts[0] (a_b.example).name:"},
		"single label": {`
hosts:
- name: localhost
  http: {status: 200}
  https: {status: 200}`, "not a fully qualified name"},
		"duplicate": {`
hosts:
- name: a.example
  http: {status: 200}
  https: {status: 200}
- name: A.example.
  http: {status: 200}
  https: {status: 200}`, `hosts[1] (A.example.).name: "a.example" already listed at hosts[0]`},
		"missing scheme": {`
hosts:
- name: a.example
  http: {status: 200}`, "hosts[0] (a.example).https: required"},
		"missing status": {`
hosts:
- name: a.example
  http: {body: hi}
  https: {status: 200}`, "hosts[0] (a.example).http.status: required"},
		"status range": {`
hosts:
- name: a.example
  http: {status: 100}
  https: {status: 200}`, "http.status: 100 is not a final HTTP status"},
		"httpbin with status": {`
hosts:
- name: a.example
  http: {httpbin: true, status: 200}
  https: {httpbin: true}`, "http.status: not allowed with httpbin: true"},
		"httpbin with body": {`
hosts:
- name: a.example
  http: {httpbin: true}
  https: {httpbin: true, body: x}`, "https.body: not allowed with httpbin: true"},
		"redirect without location": {`
hosts:
- name: a.example
  http: {status: 302}
  https: {status: 200}`, "http.headers: status 302 needs a location header"},
		"bad header name": {`
hosts:
- name: a.example
  http: {status: 200, headers: {"bad header": x}}
  https: {status: 200}`, `http.headers: "bad header" is not a valid header name`},
		"bad header value": {"hosts:\n- name: a.example\n  http: {status: 200, headers: {x-a: \"a\\nb\"}}\n  https: {status: 200}", "http.headers.x-a: value"},
		"content-length": {`
hosts:
- name: a.example
  http: {status: 200, headers: {Content-Length: "3"}}
  https: {status: 200}`, "set from the body"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadHosts([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadHostsNormalizesAndRoundTrips(t *testing.T) {
	hosts, err := LoadHosts([]byte(`
hosts:
- name: API.Example.com.
  http: {status: 204}
  https: {httpbin: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if hosts[0].Name != "api.example.com" {
		t.Fatalf("name = %q", hosts[0].Name)
	}
	data, err := MarshalHosts(builtinHosts(t))
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadHosts(data)
	if err != nil {
		t.Fatalf("re-reading MarshalHosts output: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, builtinHosts(t)) {
		t.Fatalf("round trip differs:\n%s", data)
	}
}

// builtinHosts are the built-in catalog's hosts (the package has none of its own).
func builtinHosts(t testing.TB) []Host {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "suites", "catalog", "hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := LoadHosts(data)
	if err != nil {
		t.Fatalf("suites/catalog/hosts.yaml: %v", err)
	}
	return hosts
}
