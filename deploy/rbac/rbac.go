// Package rbac holds the permissions `egressconf run --backend existing` needs, as the
// ClusterRole/Role files beside it (one per job), and turns the API server's refusals into errors
// naming the verb, the resource and the file that grants it.
package rbac

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/json"
)

//go:embed *.yaml
var files embed.FS

// Dir is where the files are in the repository (errors name them by this path).
const Dir = "deploy/rbac"

// Optional files: a run needs them only for what they say (the CoreDNS override).
var Optional = []string{"egressconf-coredns.yaml"}

// File is one role file: its roles and their bindings.
type File struct {
	// Name is the file's name in Dir.
	Name            string
	ClusterRoles    []rbacv1.ClusterRole
	Roles           []rbacv1.Role
	ClusterBindings []rbacv1.ClusterRoleBinding
	RoleBindings    []rbacv1.RoleBinding
}

// Path is the file's path in the repository.
func (f File) Path() string { return path.Join(Dir, f.Name) }

// Files decodes every role file, strictly: an unknown kind or field is an error.
func Files() ([]File, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []File
	for _, e := range entries {
		data, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		f, err := decode(e.Name(), data)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func decode(name string, data []byte) (File, error) {
	f := File{Name: name}
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		j, err := yaml.ToJSON(doc)
		if err != nil {
			return f, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
			return f, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		if tm.APIVersion != rbacv1.SchemeGroupVersion.String() {
			return f, fmt.Errorf("%s: document %d: apiVersion %q, want %s", name, i+1, tm.APIVersion, rbacv1.SchemeGroupVersion)
		}
		var target any
		switch tm.Kind {
		case "ClusterRole":
			f.ClusterRoles = append(f.ClusterRoles, rbacv1.ClusterRole{})
			target = &f.ClusterRoles[len(f.ClusterRoles)-1]
		case "Role":
			f.Roles = append(f.Roles, rbacv1.Role{})
			target = &f.Roles[len(f.Roles)-1]
		case "ClusterRoleBinding":
			f.ClusterBindings = append(f.ClusterBindings, rbacv1.ClusterRoleBinding{})
			target = &f.ClusterBindings[len(f.ClusterBindings)-1]
		case "RoleBinding":
			f.RoleBindings = append(f.RoleBindings, rbacv1.RoleBinding{})
			target = &f.RoleBindings[len(f.RoleBindings)-1]
		default:
			return f, fmt.Errorf("%s: document %d: kind %q is not a role or binding", name, i+1, tm.Kind)
		}
		strictErrs, err := json.UnmarshalStrict(j, target)
		if err == nil && len(strictErrs) > 0 {
			err = errors.Join(strictErrs...)
		}
		if err != nil {
			return f, fmt.Errorf("%s: document %d (%s): %w", name, i+1, tm.Kind, err)
		}
	}
	return f, nil
}

// Request is one permission as the API server's authorizer sees it.
type Request struct {
	Verb string
	// Group is the API group ("" for the core group).
	Group string
	// Resource, with its subresource after a slash (pods/exec).
	Resource string
	// Namespace is "" for a cluster-scoped request.
	Namespace string
	// Name is the object's name when known (resourceNames rules); "" matches any rule.
	Name string
}

func (r Request) String() string {
	res := r.Resource
	if r.Group != "" {
		res += "." + r.Group
	}
	if r.Namespace == "" {
		if r.Name != "" {
			res += " " + r.Name
		}
		return r.Verb + " " + res + " (cluster scope)"
	}
	return r.Verb + " " + res + " in namespace " + r.Namespace
}

// Granting returns the files (sorted) whose roles grant the request where they are bound: a
// ClusterRole everywhere, a Role in its own namespace.
func Granting(fs []File, r Request) []string {
	var out []string
	for _, f := range fs {
		ok := false
		for _, cr := range f.ClusterRoles {
			ok = ok || rulesAllow(cr.Rules, r)
		}
		for _, role := range f.Roles {
			ok = ok || (r.Namespace == role.Namespace && rulesAllow(role.Rules, r))
		}
		if ok {
			out = append(out, f.Path())
		}
	}
	sort.Strings(out)
	return out
}

func rulesAllow(rules []rbacv1.PolicyRule, r Request) bool {
	return slices.ContainsFunc(rules, func(p rbacv1.PolicyRule) bool { return RuleAllows(p, r) })
}

// RuleAllows reports whether one rule grants the request (exact matches: the files use no
// wildcards, which their test holds).
func RuleAllows(p rbacv1.PolicyRule, r Request) bool {
	return slices.Contains(p.Verbs, r.Verb) && slices.Contains(p.APIGroups, r.Group) &&
		slices.Contains(p.Resources, r.Resource) &&
		(len(p.ResourceNames) == 0 || r.Name == "" || slices.Contains(p.ResourceNames, r.Name))
}

// Denied is a request the API server's authorizer refused.
type Denied struct {
	Request
	// User the API server named.
	User string
	// Files that grant the request (none: the role set lacks it).
	Files []string
	// Err is the refusal as it came.
	Err error
}

func (d *Denied) Error() string {
	where := "no file in " + Dir + " grants it: the role set lacks it"
	if len(d.Files) > 0 {
		where = d.Files[0]
		for _, f := range d.Files[1:] {
			where += ", " + f
		}
	}
	return fmt.Sprintf("permission denied: %s (%s) for user %q: %v", d.Request, where, d.User, d.Err)
}

func (d *Denied) Unwrap() error { return d.Err }

// forbidden is the API server's RBAC refusal (k8s.io/apiserver's forbiddenMessage): it names the
// verb the authorizer checked, which the client cannot know (a WebSocket exec is a GET).
var forbidden = regexp.MustCompile(`User "([^"]*)" cannot ([a-z]+) resource "([^"]+)" in API group "([^"]*)"(?: in the namespace "([^"]*)"| at the cluster scope)`)

// Explain returns err as a *Denied when it carries the API server's refusal of a request
// (wherever in the chain, even flattened to text: exec's upgrade failures are), else err as it is.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var d *Denied
	if errors.As(err, &d) {
		return err
	}
	m := forbidden.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	r := Request{Verb: m[2], Resource: m[3], Group: m[4], Namespace: m[5]}
	if r.Group == "" && r.Resource == "namespaces" && r.Namespace != "" {
		// A Namespace object is cluster-scoped: the authorizer names it as the namespace.
		r.Name, r.Namespace = r.Namespace, ""
	}
	// The object's name, for rules limited to names (the message has none; the status has it).
	var se *apierrors.StatusError
	if errors.As(err, &se) && se.ErrStatus.Details != nil && se.ErrStatus.Details.Name != "" {
		r.Name = se.ErrStatus.Details.Name
	}
	fs, ferr := Files()
	if ferr != nil {
		return err
	}
	return &Denied{Request: r, User: m[1], Files: Granting(fs, r), Err: err}
}

// APIServerRefusal builds the error an API server returns for a request its authorizer refused,
// word for word as k8s.io/apiserver writes it (responsewriters.ForbiddenStatusError), for tests
// with fake clientsets.
func APIServerRefusal(user string, r Request) *apierrors.StatusError {
	res, _, _ := strings.Cut(r.Resource, "/")
	msg := fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", user, r.Verb, r.Resource, r.Group)
	if r.Namespace != "" {
		msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", user, r.Verb, r.Resource, r.Group, r.Namespace)
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: r.Group, Resource: res}, r.Name, errors.New(msg))
}
