package asm

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

// loadCRDv1 decodes CRD() strictly.
func loadCRDv1(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var v1 apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(CRD(), &v1); err != nil {
		t.Fatalf("crd.yaml: %v", err)
	}
	return &v1
}

// loadCRD decodes CRD() strictly and converts it to the apiserver's internal type.
func loadCRD(t *testing.T) *apiextensions.CustomResourceDefinition {
	t.Helper()
	v1 := loadCRDv1(t)
	var crd apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, &crd, nil); err != nil {
		t.Fatal(err)
	}
	crd.Status.StoredVersions = []string{"v1"}
	return &crd
}

// schemaOf returns the OpenAPI schema of a version. (The conversion to the internal type moves a
// schema shared by every version to spec.validation.)
func schemaOf(t *testing.T, crd *apiextensions.CustomResourceDefinition, version string) *apiextensions.JSONSchemaProps {
	t.Helper()
	for _, v := range crd.Spec.Versions {
		if v.Name != version {
			continue
		}
		if v.Schema != nil {
			return v.Schema.OpenAPIV3Schema
		}
		if crd.Spec.Validation != nil {
			return crd.Spec.Validation.OpenAPIV3Schema
		}
	}
	t.Fatalf("no schema for version %s", version)
	return nil
}

// schemaChecker validates objects the way the API server does on create: OpenAPI schema, unknown
// fields (pruning) and x-kubernetes-validations (CEL).
type schemaChecker struct {
	validator  validation.SchemaCreateValidator
	structural *structuralschema.Structural
	cel        *cel.Validator
}

func newSchemaChecker(t *testing.T, version string) *schemaChecker {
	t.Helper()
	s := schemaOf(t, loadCRD(t), version)
	sv, _, err := validation.NewSchemaValidator(s)
	if err != nil {
		t.Fatal(err)
	}
	st, err := structuralschema.NewStructural(s)
	if err != nil {
		t.Fatal(err)
	}
	return &schemaChecker{validator: sv, structural: st, cel: cel.NewValidator(st, true, celconfig.PerCallLimit)}
}

func (c *schemaChecker) check(obj map[string]any) field.ErrorList {
	errs := validation.ValidateCustomResource(nil, obj, c.validator)
	for _, p := range structuralpruning.PruneWithOptions(runtime.DeepCopyJSON(obj), c.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		errs = append(errs, field.Invalid(field.NewPath(p), nil, "unknown field"))
	}
	if c.cel != nil {
		celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// staticEstimatedCostLimit is the API server's limit on one CEL rule's estimated cost
// (k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation.StaticEstimatedCostLimit; that
// package is not imported because its dependencies are not in go.mod).
const staticEstimatedCostLimit = 10000000

// TestCRDIsValid checks what the API server checks on a CRD that matters here: a structural schema
// (which also rules out unknown OpenAPI keywords through the strict decoding of loadCRD), CEL rules
// that compile within the cost limit, names, scope and versions.
func TestCRDIsValid(t *testing.T) {
	crd := loadCRD(t)
	envSet := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	for _, v := range crd.Spec.Versions {
		st, err := structuralschema.NewStructural(schemaOf(t, crd, v.Name))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), st); len(errs) > 0 {
			t.Errorf("%s: not a structural schema: %v", v.Name, errs.ToAggregate())
		}
		rules := 0
		var walk func(s *structuralschema.Structural, path string, root bool)
		walk = func(s *structuralschema.Structural, path string, root bool) {
			if len(s.XValidations) > 0 {
				results, err := cel.Compile(s, model.SchemaDeclType(s, root), celconfig.PerCallLimit, envSet, cel.NewExpressionsEnvLoader())
				if err != nil {
					t.Fatalf("%s %s: %v", v.Name, path, err)
				}
				for i, r := range results {
					rules++
					if r.Error != nil {
						t.Errorf("%s %s rule %d: %v", v.Name, path, i, r.Error)
					}
					if r.MaxCost > staticEstimatedCostLimit {
						t.Errorf("%s %s rule %d: estimated cost %d over the limit", v.Name, path, i, r.MaxCost)
					}
				}
			}
			for name, p := range s.Properties {
				walk(&p, path+"."+name, false)
			}
			if s.Items != nil {
				walk(s.Items, path+"[]", false)
			}
		}
		walk(st, "", true)
		if rules != 3 {
			t.Errorf("%s: %d CEL rules compiled, want 3", v.Name, rules)
		}
	}
	if crd.Name != CRDName || crd.Spec.Group != Group || crd.Spec.Names.Kind != Kind ||
		crd.Spec.Names.Plural != Plural || crd.Spec.Scope != apiextensions.NamespaceScoped {
		t.Errorf("names: %s %s %+v %s", crd.Name, crd.Spec.Group, crd.Spec.Names, crd.Spec.Scope)
	}
	var versions []string
	for _, v := range crd.Spec.Versions {
		versions = append(versions, v.Name)
		if v.Storage != (v.Name == "v1") || !v.Served {
			t.Errorf("version %s: served %v storage %v", v.Name, v.Served, v.Storage)
		}
	}
	if !reflect.DeepEqual(versions, []string{"v1", "v1beta1"}) {
		t.Errorf("versions %v", versions)
	}
	// v1beta1 converts to v1 with no webhook: the schemas must be the same.
	v1 := loadCRDv1(t)
	if len(v1.Spec.Versions) != 2 || !reflect.DeepEqual(v1.Spec.Versions[0].Schema, v1.Spec.Versions[1].Schema) ||
		!reflect.DeepEqual(v1.Spec.Versions[0].AdditionalPrinterColumns, v1.Spec.Versions[1].AdditionalPrinterColumns) {
		t.Error("v1 and v1beta1 differ")
	}
	if v1.Spec.Versions[0].Schema == nil {
		t.Error("no schema")
	}
}

// The schema and the Go types name the same fields.
func TestCRDSchemaMatchesGoTypes(t *testing.T) {
	root := schemaOf(t, loadCRD(t), "v1")
	compare(t, "spec", reflect.TypeOf(Spec{}), root.Properties["spec"])
	compare(t, "status", reflect.TypeOf(Status{}), root.Properties["status"])
}

func compare(t *testing.T, path string, typ reflect.Type, s apiextensions.JSONSchemaProps) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
		if s.Items != nil && s.Type == "array" {
			s = *s.Items.Schema
		}
	}
	if typ.Kind() != reflect.Struct {
		return
	}
	var goFields, schemaFields []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if yml := strings.Split(f.Tag.Get("yaml"), ",")[0]; yml != name {
			t.Errorf("%s.%s: json tag %q, yaml tag %q", path, f.Name, name, yml)
		}
		goFields = append(goFields, name)
		prop, ok := s.Properties[name]
		if !ok {
			continue
		}
		compare(t, path+"."+name, f.Type, prop)
	}
	for name := range s.Properties {
		schemaFields = append(schemaFields, name)
	}
	sort.Strings(goFields)
	sort.Strings(schemaFields)
	if !reflect.DeepEqual(goFields, schemaFields) {
		t.Errorf("%s: Go fields %v, schema fields %v", path, goFields, schemaFields)
	}
}

func TestCRDAcceptsSeeds(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1"} {
		c := newSchemaChecker(t, version)
		for _, name := range []string{
			"seed-http.yaml", "seed-https-upgrade.yaml", "seed-https-passthrough.yaml", "seed-tcp.yaml",
			"seed-older-http.yaml", "seed-older-https-upgrade.yaml", "seed-older-https-passthrough.yaml", "multi-rule.yaml",
		} {
			var obj map[string]any
			if err := yaml.Unmarshal(readTestdata(t, name), &obj); err != nil {
				t.Fatal(err)
			}
			obj = toInt64(obj).(map[string]any)
			obj["apiVersion"] = Group + "/" + version
			if errs := c.check(obj); len(errs) > 0 {
				t.Errorf("%s %s: %v", version, name, errs.ToAggregate())
			}
		}
	}
}

// schemaCases: one per rule of the documents that the schema can enforce. Each edits the
// unstructured form of a seed and expects an error at path.
var schemaCases = []struct {
	rule string
	seed string
	edit func(o map[string]any)
	path string
	typ  field.ErrorType
}{
	{"spec is required", "", func(o map[string]any) { delete(o, "spec") }, "spec", field.ErrorTypeRequired},
	{"byEgressGateway is required", "", func(o map[string]any) { del(o, "spec", "byEgressGateway") },
		"spec.byEgressGateway", field.ErrorTypeRequired},
	{"byEgressGateway.name is required", "", func(o map[string]any) { del(o, "spec", "byEgressGateway", "name") },
		"spec.byEgressGateway.name", field.ErrorTypeRequired},
	{"egressRules is required", "", func(o map[string]any) { del(o, "spec", "egressRules") },
		"spec.egressRules", field.ErrorTypeRequired},
	{"at least one rule", "", func(o map[string]any) { set(o, []any{}, "spec", "egressRules") },
		"spec.egressRules", field.ErrorTypeInvalid},
	{"from is required", "", func(o map[string]any) { delete(rule(o), "from") },
		"spec.egressRules[0].from", field.ErrorTypeRequired},
	{"at least one from", "", func(o map[string]any) { rule(o)["from"] = []any{} },
		"spec.egressRules[0].from", field.ErrorTypeInvalid},
	{"from.namespace is required", "", func(o map[string]any) {
		delete(rule(o)["from"].([]any)[0].(map[string]any), "namespace")
	}, "spec.egressRules[0].from[0].namespace", field.ErrorTypeRequired},
	{"workloadSelector values are strings", "", func(o map[string]any) {
		rule(o)["from"].([]any)[0].(map[string]any)["workloadSelector"] = map[string]any{"app": int64(1)}
	}, "spec.egressRules[0].from[0].workloadSelector.app", field.ErrorTypeTypeInvalid},
	{"to is required", "", func(o map[string]any) { delete(rule(o), "to") },
		"spec.egressRules[0].to", field.ErrorTypeRequired},
	{"at least one to", "", func(o map[string]any) { rule(o)["to"] = []any{} },
		"spec.egressRules[0].to", field.ErrorTypeInvalid},
	{"hosts are required", "", func(o map[string]any) { delete(dest(o), "hosts") },
		"spec.egressRules[0].to[0].hosts", field.ErrorTypeRequired},
	{"at least one host", "", func(o map[string]any) { dest(o)["hosts"] = []any{} },
		"spec.egressRules[0].to[0].hosts", field.ErrorTypeInvalid},
	{"at most 50 hosts", "", func(o map[string]any) {
		var hs []any
		for i := 0; i < 51; i++ {
			hs = append(hs, string(rune('a'+i%26))+string(rune('a'+i/26))+".example.com")
		}
		dest(o)["hosts"] = hs
	}, "spec.egressRules[0].to[0].hosts", field.ErrorTypeTooMany},
	{"hosts are DNS names", "", func(o map[string]any) { dest(o)["hosts"] = []any{"*.httpbin.org"} },
		"spec.egressRules[0].to[0].hosts[0]", field.ErrorTypeInvalid},
	{"port is required", "", func(o map[string]any) { delete(dest(o), "port") },
		"spec.egressRules[0].to[0].port", field.ErrorTypeRequired},
	{"port.number is required", "", func(o map[string]any) { delete(port(o), "number") },
		"spec.egressRules[0].to[0].port.number", field.ErrorTypeRequired},
	{"port.number at most 65535", "", func(o map[string]any) { port(o)["number"] = int64(65536) },
		"spec.egressRules[0].to[0].port.number", field.ErrorTypeInvalid},
	{"port.number at least 1", "", func(o map[string]any) { port(o)["number"] = int64(0) },
		"spec.egressRules[0].to[0].port.number", field.ErrorTypeInvalid},
	{"port.name is required", "", func(o map[string]any) { delete(port(o), "name") },
		"spec.egressRules[0].to[0].port.name", field.ErrorTypeRequired},
	{"port.protocol is required", "", func(o map[string]any) { delete(port(o), "protocol") },
		"spec.egressRules[0].to[0].port.protocol", field.ErrorTypeRequired},
	{"port.protocol is HTTP, HTTPS, TLS or TCP", "", func(o map[string]any) { port(o)["protocol"] = "GRPC" },
		"spec.egressRules[0].to[0].port.protocol", field.ErrorTypeNotSupported},
	{"byEgressGateway.port at most 65535", "", func(o map[string]any) {
		dest(o)["byEgressGateway"] = map[string]any{"port": int64(65536)}
	}, "spec.egressRules[0].to[0].byEgressGateway.port", field.ErrorTypeInvalid},
	{"byEgressGateway.port at least 1", "", func(o map[string]any) {
		dest(o)["byEgressGateway"] = map[string]any{"port": int64(0)}
	}, "spec.egressRules[0].to[0].byEgressGateway.port", field.ErrorTypeInvalid},
	{"spec byEgressGateway.port in range", "", func(o map[string]any) { set(o, int64(-1), "spec", "byEgressGateway", "port") },
		"spec.byEgressGateway.port", field.ErrorTypeInvalid},
	{"httpsUpgrade.port is required when enabled", "seed-https-upgrade.yaml", func(o map[string]any) {
		delete(dest(o)["httpsUpgrade"].(map[string]any), "port")
	}, "spec.egressRules[0].to[0].httpsUpgrade.port", field.ErrorTypeRequired},
	{"httpsUpgrade.port in range", "seed-https-upgrade.yaml", func(o map[string]any) {
		dest(o)["httpsUpgrade"].(map[string]any)["port"] = int64(70000)
	}, "spec.egressRules[0].to[0].httpsUpgrade.port", field.ErrorTypeInvalid},
	{"httpsUpgrade only with HTTP", "seed-https-passthrough.yaml", func(o map[string]any) {
		dest(o)["httpsUpgrade"] = map[string]any{"enabled": true, "port": int64(8443)}
	}, "spec.egressRules[0].to[0].httpsUpgrade.enabled", field.ErrorTypeInvalid},
	{"httpsUpgrade.port differs from the port", "seed-https-upgrade.yaml", func(o map[string]any) {
		dest(o)["httpsUpgrade"].(map[string]any)["port"] = int64(80)
	}, "spec.egressRules[0].to[0].httpsUpgrade.port", field.ErrorTypeInvalid},
	{"unknown fields are refused", "", func(o map[string]any) { dest(o)["hostz"] = []any{"x"} },
		"spec.egressRules[0].to[0].hostz", field.ErrorTypeInvalid},
}

func TestCRDSchemaRules(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1"} {
		c := newSchemaChecker(t, version)
		for _, tc := range schemaCases {
			t.Run(version+"/"+tc.rule, func(t *testing.T) {
				seed := tc.seed
				if seed == "" {
					seed = "seed-http.yaml"
				}
				var obj map[string]any
				if err := yaml.Unmarshal(readTestdata(t, seed), &obj); err != nil {
					t.Fatal(err)
				}
				obj = runtime.DeepCopyJSON(toInt64(obj).(map[string]any))
				obj["apiVersion"] = Group + "/" + version
				tc.edit(obj)
				errs := c.check(obj)
				if len(errs) == 0 {
					t.Fatal("the schema accepts it")
				}
				found := false
				for _, e := range errs {
					if e.Field == tc.path && e.Type == tc.typ {
						found = true
					}
				}
				if !found {
					t.Errorf("want a %q error at %s, got %v", tc.typ, tc.path, errs.ToAggregate())
				}
			})
		}
	}
}

// What the schema cannot express is left to Validate: both are tested here so the split is
// explicit.
func TestRulesOnlyValidateEnforces(t *testing.T) {
	c := newSchemaChecker(t, "v1")
	cases := []struct {
		rule string
		edit func(p *Policy)
		path string
	}{
		// CEL can read metadata.name and metadata.generateName only, not metadata.namespace.
		{"namespace must be istio-egress", func(p *Policy) { p.Namespace = "default" }, "metadata.namespace"},
		{"mixing protocols", func(p *Policy) {
			p.Spec.EgressRules[0].To = append(p.Spec.EgressRules[0].To, To{Name: "https", Hosts: []string{"httpbin.org"},
				Port: &Port{Number: 443, Name: "https", Protocol: ProtocolHTTPS}})
		}, "spec.egressRules[0].to[1].hosts[0]"},
		{"label syntax of workloadSelector", func(p *Policy) {
			p.Spec.EgressRules[0].From[0].WorkloadSelector = map[string]string{"app": "-bad-"}
		}, "spec.egressRules[0].from[0].workloadSelector"},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			p, err := Parse(readTestdata(t, "seed-http.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(p)
			u, err := ToUnstructured(p)
			if err != nil {
				t.Fatal(err)
			}
			if errs := c.check(toInt64(u.Object).(map[string]any)); len(errs) > 0 {
				t.Errorf("the schema now enforces it (update the CRD comment and docs): %v", errs.ToAggregate())
			}
			errs := Validate(p)
			if len(errs) != 1 || errs[0].Field != tc.path {
				t.Errorf("Validate: %v, want one error at %s", errs.ToAggregate(), tc.path)
			}
		})
	}
}

// toInt64 turns the float64 numbers of a JSON/YAML decoding into int64, as the API server's
// decoder does.
func toInt64(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = toInt64(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = toInt64(e)
		}
		return x
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		return x
	case int:
		return int64(x)
	default:
		return v
	}
}

// rule returns the first rule of an unstructured policy, for editing in place (NestedSlice would
// return a copy).
func rule(o map[string]any) map[string]any {
	return o["spec"].(map[string]any)["egressRules"].([]any)[0].(map[string]any)
}

func dest(o map[string]any) map[string]any { return rule(o)["to"].([]any)[0].(map[string]any) }

func port(o map[string]any) map[string]any { return dest(o)["port"].(map[string]any) }

func del(o map[string]any, path ...string) { unstructured.RemoveNestedField(o, path...) }

func set(o map[string]any, v any, path ...string) {
	m := o
	for _, p := range path[:len(path)-1] {
		m = m[p].(map[string]any)
	}
	m[path[len(path)-1]] = v
}
