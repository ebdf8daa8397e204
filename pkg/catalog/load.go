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
	"github.com/egressconf/egressconf/pkg/standin"
)

// ScenarioFile is the name of a scenario's definition inside its directory.
const ScenarioFile = "scenario.yaml"

// HostsFile is the name of a catalog's external hosts file, at its root beside the scenario
// directories (pkg/standin's schema; docs/catalog.md, "External hosts").
const HostsFile = "hosts.yaml"

// LoadFS loads every scenario below root in fsys: each directory holding a scenario.yaml, in
// directory-name order, and the external hosts of root/hosts.yaml and of the scenarios'
// spec.hosts. Errors name the file and line.
func LoadFS(fsys fs.FS, root string) (*Catalog, error) {
	c, err := loadFS(fsys, root, "")
	if err != nil {
		return nil, err
	}
	if err := c.mergeHosts(); err != nil {
		return nil, err
	}
	return c, nil
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
	hf := path.Join(root, HostsFile)
	hosts, err := loadHostsFile(fsys, hf, shown(hf))
	if err != nil {
		return nil, err
	}
	if hosts != nil {
		c.setCatalogHosts(hosts, shown(hf))
	}
	return c, nil
}

// loadHostsFile reads a catalog's hosts.yaml; nil, nil when there is none.
func loadHostsFile(fsys fs.FS, name, display string) ([]standin.Host, error) {
	if _, err := fs.Stat(fsys, name); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	data, err := readFile(fsys, name, display)
	if err != nil {
		return nil, err
	}
	hosts, err := standin.LoadHosts(data)
	if err != nil {
		return nil, inFile(display, err)
	}
	return hosts, nil
}

// inFile prefixes every line of err (errors.Join puts one problem a line) with the file name.
func inFile(display string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = display + ": " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}

func (c *Catalog) setCatalogHosts(hosts []standin.Host, file string) {
	for _, s := range c.Scenarios {
		s.catalogHosts, s.hostsFile = hosts, file
	}
}

// mergeHosts sets c.Hosts from the scenarios' catalog hosts files and spec.hosts. One name
// declared twice with different content, or one port given two protocols (the stand-in has one
// listener per port), is an error naming both files.
func (c *Catalog) mergeHosts() error {
	type origin struct {
		host standin.Host
		file string
	}
	byName := map[string]origin{}
	byPort := map[int]origin{}
	var errs []error
	c.Hosts = nil
	add := func(h standin.Host, file string) {
		if prev, ok := byName[h.Name]; ok {
			if !prev.host.Equal(h) {
				errs = append(errs, fmt.Errorf("%s: host %s is declared differently in %s: a name has one behaviour in a catalog (give it once, or identically)", file, h.Name, prev.file))
			}
			return
		}
		for _, p := range h.PortList() {
			if prev, ok := byPort[p.Port]; ok && prev.host.Name != h.Name {
				if proto, _ := prev.host.Serves(p.Port); proto != p.Protocol {
					errs = append(errs, fmt.Errorf("%s: host %s: port %d is %s, but %s for host %s in %s: the stand-in has one listener per port", file, h.Name, p.Port, p.Protocol, proto, prev.host.Name, prev.file))
				}
				continue
			}
			byPort[p.Port] = origin{h, file}
		}
		byName[h.Name] = origin{h, file}
		c.Hosts = append(c.Hosts, h)
	}
	files := map[string]bool{}
	for _, s := range c.Scenarios {
		if s.hostsFile == "" || files[s.hostsFile] {
			continue
		}
		files[s.hostsFile] = true
		for _, h := range s.catalogHosts {
			add(h, s.hostsFile)
		}
	}
	for _, s := range c.Scenarios {
		for _, h := range s.Spec.Hosts {
			add(h, s.File+" (spec.hosts)")
		}
	}
	return errors.Join(errs...)
}

// LoadPaths loads scenarios from directories or scenario.yaml files on disk (a vendor's own),
// with their catalogs' external hosts: a directory's hosts.yaml; for a scenario file, or a
// directory that is itself one scenario's, the hosts.yaml of the directory above (the catalog
// root beside the scenario directories).
func LoadPaths(paths ...string) (*Catalog, error) {
	c := &Catalog{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var sub *Catalog
		scenarioDir := ""
		if st.IsDir() {
			sub, err = loadFS(os.DirFS(p), ".", p)
			if _, serr := os.Stat(filepath.Join(p, ScenarioFile)); serr == nil {
				scenarioDir = p
			}
		} else {
			dir := filepath.Dir(p)
			var s *Scenario
			s, err = loadScenario(os.DirFS(dir), filepath.Base(p), p)
			if err == nil {
				sub = &Catalog{Scenarios: []*Scenario{s}}
			}
			scenarioDir = dir
		}
		if err != nil {
			return nil, err
		}
		if scenarioDir != "" && sub.Scenarios[0].hostsFile == "" {
			parent := filepath.Dir(absPath(scenarioDir))
			hf := filepath.Join(parent, HostsFile)
			hosts, err := loadHostsFile(os.DirFS(parent), HostsFile, hf)
			if err != nil {
				return nil, err
			}
			if hosts != nil {
				sub.setCatalogHosts(hosts, hf)
			}
		}
		c.Scenarios = append(c.Scenarios, sub.Scenarios...)
	}
	if err := c.mergeHosts(); err != nil {
		return nil, err
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
	if err := standin.ValidateHostsAt("spec.hosts", s.Spec.Hosts); err != nil {
		return nil, inFile(display, err)
	}
	standin.Normalize(s.Spec.Hosts)
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
