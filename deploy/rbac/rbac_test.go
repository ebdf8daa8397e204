package rbac

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// The verbs RBAC knows for resources; escalate, bind and impersonate are left out on purpose.
var resourceVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

func TestFilesAreValidAndNarrow(t *testing.T) {
	fs, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	// Every file of the directory is embedded and decoded.
	disk, _ := os.ReadDir(".")
	yamls := 0
	for _, e := range disk {
		if strings.HasSuffix(e.Name(), ".yaml") {
			yamls++
		}
	}
	if yamls != len(fs) || len(fs) < 3 {
		t.Fatalf("%d files decoded, %d YAML files on disk", len(fs), yamls)
	}
	for _, f := range fs {
		roles := map[string]bool{}
		check := func(where string, rules []rbacv1.PolicyRule) {
			if len(rules) == 0 {
				t.Errorf("%s: no rules", where)
			}
			for i, r := range rules {
				w := fmt.Sprintf("%s rule %d", where, i+1)
				if len(r.NonResourceURLs) > 0 {
					t.Errorf("%s: non-resource URLs %v (discovery is every user's already)", w, r.NonResourceURLs)
				}
				if len(r.Verbs) == 0 || len(r.Resources) == 0 || len(r.APIGroups) == 0 {
					t.Errorf("%s: empty verbs, resources or apiGroups: %+v", w, r)
				}
				for _, list := range [][]string{r.Verbs, r.Resources, r.APIGroups, r.ResourceNames} {
					for _, v := range list {
						if v == "" && !slices.Equal(list, r.APIGroups) || strings.Contains(v, "*") {
							t.Errorf("%s: %q: no wildcards, no empty names", w, v)
						}
					}
				}
				for _, v := range r.Verbs {
					if !slices.Contains(resourceVerbs, v) {
						t.Errorf("%s: verb %q", w, v)
					}
				}
				for _, res := range r.Resources {
					if res == "secrets" && (slices.Contains(r.Verbs, "list") || slices.Contains(r.Verbs, "watch") ||
						len(r.ResourceNames) == 0 && slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "create" })) {
						t.Errorf("%s: Secrets beyond create and the run's own names: %v %v", w, r.Verbs, r.ResourceNames)
					}
					if strings.HasPrefix(res, "roles") || strings.HasPrefix(res, "rolebindings") || strings.HasPrefix(res, "clusterrole") {
						t.Errorf("%s: RBAC objects (%s): a run never grants anything", w, res)
					}
				}
			}
		}
		for _, r := range f.ClusterRoles {
			roles["ClusterRole/"+r.Name] = true
			if r.AggregationRule != nil {
				t.Errorf("%s: ClusterRole %s aggregates", f.Name, r.Name)
			}
			check(f.Name+" ClusterRole "+r.Name, r.Rules)
		}
		for _, r := range f.Roles {
			roles["Role/"+r.Namespace+"/"+r.Name] = true
			if r.Namespace == "" {
				t.Errorf("%s: Role %s has no namespace", f.Name, r.Name)
			}
			check(f.Name+" Role "+r.Name, r.Rules)
		}
		// Bindings bind only this file's roles (never cluster-admin, admin, edit or view), to the
		// documented ServiceAccount.
		refs := 0
		bind := func(kind, ns string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
			refs++
			key := ref.Kind + "/" + ref.Name
			if ref.Kind == "Role" {
				key = "Role/" + ns + "/" + ref.Name
			}
			if !roles[key] {
				t.Errorf("%s: %s binds %s %s, not a role of this file", f.Name, kind, ref.Kind, ref.Name)
			}
			if len(subjects) != 1 || subjects[0].Kind != "ServiceAccount" || subjects[0].Name != "egressconf" || subjects[0].Namespace != "egressconf" {
				t.Errorf("%s: %s subjects %+v, want ServiceAccount egressconf/egressconf", f.Name, kind, subjects)
			}
		}
		for _, b := range f.ClusterBindings {
			bind("ClusterRoleBinding "+b.Name, "", b.RoleRef, b.Subjects)
		}
		for _, b := range f.RoleBindings {
			bind("RoleBinding "+b.Name, b.Namespace, b.RoleRef, b.Subjects)
		}
		if refs != len(roles) {
			t.Errorf("%s: %d roles, %d bindings: one binding per role", f.Name, len(roles), refs)
		}
	}
}

func TestDecodeRefusesUnknownFieldsAndKinds(t *testing.T) {
	for _, bad := range []string{
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n  resource: [pods]\n  verbs: [get]\n",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n",
		"apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: Role\nmetadata: {name: x}\n",
	} {
		if _, err := decode("bad.yaml", []byte(bad)); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
}

// APIServerRefusal is the error the API server's authorizer returns: k8s.io/apiserver's
// responsewriters.ForbiddenStatusError (forbiddenMessage), reproduced here because importing it
// pulls the API server's tracing into go.mod. The live run's negative check (kind_e2e_test.go)
// meets the real one.
func apiServerRefusal(verb, group, resource, sub, ns, name string) error {
	return APIServerRefusal("system:serviceaccount:egressconf:egressconf", Request{Verb: verb, Group: group, Resource: resource + map[bool]string{true: "/" + sub}[sub != ""], Namespace: ns, Name: name})
}

func TestExplainNamesVerbResourceAndFile(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("probe did not run: %w", apiServerRefusal("create", "", "pods", "exec", "demo-frontend", "sleep-1")),
			"permission denied: create pods/exec in namespace demo-frontend (deploy/rbac/egressconf-run.yaml)"},
		// exec's upgrade failure keeps the refusal only as text.
		{fmt.Errorf("exec: %v", &httpstream.UpgradeFailureError{Cause: apiServerRefusal("create", "", "pods", "exec", "istio-system", "istiod-1")}),
			"permission denied: create pods/exec in namespace istio-system (deploy/rbac/egressconf-run.yaml)"},
		{apiServerRefusal("update", "", "configmaps", "", "istio-system", "istio"),
			"permission denied: update configmaps in namespace istio-system (deploy/rbac/egressconf-istio-system.yaml)"},
		{apiServerRefusal("update", "", "configmaps", "", "kube-system", "coredns"),
			"permission denied: update configmaps in namespace kube-system (deploy/rbac/egressconf-coredns.yaml)"},
		{apiServerRefusal("create", "networking.istio.io", "serviceentries", "", "istio-system", ""),
			"permission denied: create serviceentries.networking.istio.io in namespace istio-system (deploy/rbac/egressconf-run.yaml)"},
		{apiServerRefusal("create", "", "namespaces", "", "", ""),
			"permission denied: create namespaces (cluster scope) (deploy/rbac/egressconf-run.yaml)"},
		// A Namespace object: the authorizer names it as the namespace; patch is granted on two.
		{apiServerRefusal("patch", "", "namespaces", "", "istio-egress", "istio-egress"),
			"permission denied: patch namespaces istio-egress (cluster scope) (deploy/rbac/egressconf-run.yaml)"},
		{apiServerRefusal("patch", "", "namespaces", "", "payments", "payments"),
			"permission denied: patch namespaces payments (cluster scope) (no file in deploy/rbac grants it: the role set lacks it)"},
		// A rule limited to names: only the mesh config may be updated in istio-system.
		{apiServerRefusal("update", "", "configmaps", "", "istio-system", "other"),
			"permission denied: update configmaps in namespace istio-system (no file in deploy/rbac grants it: the role set lacks it)"},
		{apiServerRefusal("get", "", "secrets", "", "istio-system", "istio-ca-secret"),
			"permission denied: get secrets in namespace istio-system (no file in deploy/rbac grants it: the role set lacks it)"},
		{apiServerRefusal("get", "", "secrets", "", "egressconf-internet", "standin-certs"),
			"permission denied: get secrets in namespace egressconf-internet (deploy/rbac/egressconf-run.yaml)"},
		// Nothing grants it: the role set lacks it (pods/portforward is granted in istio-system only).
		{apiServerRefusal("create", "", "pods", "portforward", "demo-frontend", "sleep-1"),
			"permission denied: create pods/portforward in namespace demo-frontend (no file in deploy/rbac grants it: the role set lacks it)"},
	} {
		got := Explain(tc.err)
		var d *Denied
		if !errors.As(got, &d) {
			t.Errorf("Explain(%v) = %v, not a *Denied", tc.err, got)
			continue
		}
		if !strings.HasPrefix(got.Error(), tc.want) || !strings.Contains(got.Error(), `user "system:serviceaccount:egressconf:egressconf"`) {
			t.Errorf("Explain:\n got %s\nwant %s ...", got, tc.want)
		}
		if !strings.Contains(got.Error(), tc.err.Error()) {
			t.Errorf("the original error is lost: %s", got)
		}
		if Explain(got) != got {
			t.Error("Explain of an explained error changed it")
		}
	}
	// Anything else is left alone: no error, another error, and a 403 that is not RBAC's (an
	// admission webhook's refusal).
	if Explain(nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
	other := errors.New("connection refused")
	if Explain(other) != other {
		t.Error("Explain changed an unrelated error")
	}
	adm := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New(`admission webhook "validation.istio.io" denied the request`))
	if Explain(adm) != error(adm) {
		t.Error("Explain rewrote a refusal that is not the authorizer's")
	}
}
