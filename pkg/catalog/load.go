package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/egressconf/egressconf/pkg/probe"
)

// ScenarioFile is the name of a scenario's definition inside its directory.
const ScenarioFile = "scenario.yaml"

// LoadFS loads every scenario below root in fsys: each directory holding a scenario.yaml, in
// directory-name order. Errors name the file and line.
func LoadFS(fsys fs.FS, root string) (*Catalog, error) {
	return loadFS(fsys, root, "")
}

// loadFS loads like LoadFS; display prefixes file names in errors and in Scenario.File.
func loadFS(fsys fs.FS, root, display string) (*Catalog, error) {
	shown := func(p string) string { return filepath.Join(display, filepath.FromSlash(p)) }
	var files []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// A link inside a catalog is refused rather than skipped: WalkDir does not follow it, so the
		// scenarios behind it would silently be missing from the run.
		if d.Type()&fs.ModeSymlink != 0 && p != root {
			st, err := fs.Stat(fsys, p)
			switch {
			case errors.Is(err, syscall.ELOOP):
				return fmt.Errorf("%s: a symbolic link that loops (it leads back to itself)", shown(p))
			case err != nil:
				return fmt.Errorf("%s: a symbolic link whose target cannot be read: %v", shown(p), err)
			case st.IsDir():
				return fmt.Errorf("%s is a symbolic link to a directory, which the catalog loader does not follow: pass its target as its own catalog path, or copy it", shown(p))
			}
		}
		if !d.IsDir() && d.Name() == ScenarioFile {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading catalog %s: %w", shown(root), err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("catalog %s: no %s in it or in any directory below it", absPath(shownRoot(display, root)), ScenarioFile)
	}
	sort.Strings(files)
	c := &Catalog{}
	for _, f := range files {
		s, err := loadScenario(fsys, f, filepath.Join(display, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		c.Scenarios = append(c.Scenarios, s)
	}
	return c, nil
}

// LoadPaths loads scenarios from directories or scenario.yaml files on disk (a vendor's own).
func LoadPaths(paths ...string) (*Catalog, error) {
	c := &Catalog{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var sub *Catalog
		if st.IsDir() {
			sub, err = loadFS(os.DirFS(p), ".", p)
		} else {
			dir := filepath.Dir(p)
			var s *Scenario
			s, err = loadScenario(os.DirFS(dir), filepath.Base(p), p)
			if err == nil {
				sub = &Catalog{Scenarios: []*Scenario{s}}
			}
		}
		if err != nil {
			return nil, err
		}
		c.Scenarios = append(c.Scenarios, sub.Scenarios...)
	}
	return c, nil
}

// shownRoot is the catalog root as the user named it (display), or the embedded root.
func shownRoot(display, root string) string {
	if display != "" {
		return display
	}
	return root
}

// absPath names a directory the way a user can find it: "." is useless in a message.
func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// MaxFileSize bounds every scenario and resource file: a catalog file is text a person wrote.
const MaxFileSize = 1 << 20

// readFile reads a catalog file, refusing one larger than MaxFileSize, an empty one and one that
// is not UTF-8 (naming the line), each with the file's name.
func readFile(fsys fs.FS, name, display string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s: a symbolic link that loops (it leads back to itself)", display)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than the 1 MiB limit for catalog files", display)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", display)
	}
	if !utf8.Valid(data) {
		line, col := 1, 1
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			if data[i] == '\n' {
				line, col = line+1, 0
			}
			i += n
			col++
		}
		return nil, fmt.Errorf("%s: line %d, column %d: not valid UTF-8 text", display, line, col)
	}
	return data, nil
}

func loadScenario(fsys fs.FS, file, display string) (*Scenario, error) {
	data, err := readFile(fsys, file, display)
	if err != nil {
		return nil, err
	}
	s := &Scenario{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no YAML document (only comments)", display)
		}
		return nil, fmt.Errorf("%s: %s", display, yamlError(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: one scenario per file; a second YAML document follows", display)
	}
	if line := nullField(data, "holdsRegardless"); line > 0 {
		return nil, fmt.Errorf("%s: line %d: holdsRegardless: the reason is required (a null value reads as no declaration)", display, line)
	}
	s.File, s.Dir, s.fsys = display, path.Dir(file), fsys
	s.lines = lineIndex(data)
	s.fieldLines = fieldLineIndex(data)
	uninjectedDefaults(s)
	for si := range s.Spec.Steps {
		for ei := range s.Spec.Steps[si].Expect {
			e := &s.Spec.Steps[si].Expect[ei]
			for ci := range e.Checks {
				c := &e.Checks[ci]
				if c.Curl == "" {
					continue
				}
				req, err := probe.ParseCurl(c.Curl)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %s.checks[%d].curl: %v", display, s.lineOf(e.ID), e.ID, ci, err)
				}
				c.Request = req
			}
		}
	}
	return s, nil
}

// nullField returns the line of the first mapping key named field whose value is null
// ("field:" with nothing after it), or 0. Decoding cannot tell such a key from an absent one.
func nullField(data []byte, field string) int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return 0
	}
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == field && v.ShortTag() == "!!null" {
					return k.Line
				}
			}
		}
		for _, c := range n.Content {
			if line := walk(c); line > 0 {
				return line
			}
		}
		return 0
	}
	return walk(&root)
}

// yamlError turns go-yaml's messages ("yaml: unmarshal errors:\n  line 12: field foo not found in
// type catalog.Step") into one line per problem.
func yamlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		// Name the field, not the Go type.
		if i := strings.Index(l, " not found in type "); i >= 0 {
			l = l[:i] + " is not a known field here"
		}
		out = append(out, l)
	}
	return strings.Join(out, "; ")
}

// uninjectedDefaults makes a workload in a namespace with injection: false, and no sidecar field
// of its own, a workload without a sidecar: Istio injects nothing there, and every backend reads
// HasSidecar alone. An explicit sidecar: true there is left for Validate to refuse.
func uninjectedDefaults(s *Scenario) {
	off := map[string]bool{}
	for _, n := range s.Spec.Namespaces {
		off[n.Name] = !n.Injected()
	}
	no := false
	for i := range s.Spec.Workloads {
		w := &s.Spec.Workloads[i]
		if off[w.Namespace] && w.Sidecar == nil && !w.Gateway {
			w.Sidecar = &no
		}
	}
}

// fieldLineIndex maps every field path of the document (spec.workloads[0].labels.team) to the line
// its key (or sequence item) is on, for error messages.
func fieldLineIndex(data []byte) map[string]int {
	idx := map[string]int{}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return idx
	}
	var walk func(n *yaml.Node, at string)
	walk = func(n *yaml.Node, at string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if at != "" {
					p = at + "." + p
				}
				idx[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", at, i)
				idx[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(root.Content[0], "")
	return idx
}

// lineAt names the line of a field path, or of the nearest enclosing field the file has
// ("line ?" when none).
func (s *Scenario) lineAt(field string) string {
	for p := field; p != ""; {
		if n, ok := s.fieldLines[p]; ok {
			return fmt.Sprintf("line %d", n)
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "line ?"
}

// lineIndex maps each expectation ID to the line it is declared on, for error messages.
func lineIndex(data []byte) map[string]int {
	idx := map[string]int{}
	for i, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		t = strings.TrimPrefix(t, "- ")
		if strings.HasPrefix(t, "id:") {
			id := strings.Trim(strings.TrimSpace(strings.TrimPrefix(t, "id:")), `"'`)
			if _, dup := idx[id]; !dup {
				idx[id] = i + 1
			}
		}
	}
	return idx
}

func (s *Scenario) lineOf(id string) string {
	if n, ok := s.lines[id]; ok {
		return fmt.Sprintf("line %d", n)
	}
	return "line ?"
}

// Objects reads a resource file of the scenario as it is applied: every YAML document becomes an
// object; a file applied into a namespace gets it (as kubectl apply -n does), and one without a
// namespace lands in "default".
func (s *Scenario) Objects(r Resources) ([]*unstructured.Unstructured, error) {
	if s.fsys == nil {
		return nil, fmt.Errorf("scenario %s was not loaded from files", s.Metadata.Name)
	}
	name := path.Join(s.Dir, r.File)
	data, err := readFile(s.fsys, name, s.resourcePath(r.File))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", s.resourcePath(r.File), err)
		}
		return nil, err
	}
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: document %d: %v", s.resourcePath(r.File), i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d: apiVersion, kind and metadata.name are required", s.resourcePath(r.File), i+1)
		}
		switch ns := u.GetNamespace(); {
		case r.Namespace != "" && ns != "" && ns != r.Namespace:
			return nil, fmt.Errorf("%s: %s %s has namespace %s but is applied into %s", s.resourcePath(r.File), u.GetKind(), u.GetName(), ns, r.Namespace)
		case r.Namespace != "":
			u.SetNamespace(r.Namespace)
		case ns == "" && !clusterScoped(u.GetKind()):
			u.SetNamespace("default")
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: no objects", s.resourcePath(r.File))
	}
	return objs, nil
}

func (s *Scenario) resourcePath(file string) string {
	if s.File != "" {
		return path.Join(path.Dir(filepath.ToSlash(s.File)), file)
	}
	return file
}

func clusterScoped(kind string) bool {
	switch kind {
	case "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition":
		return true
	}
	return false
}
