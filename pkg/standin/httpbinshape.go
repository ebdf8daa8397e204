package standin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// httpbin.org answers its echo endpoints with one string per header, argument and form field
// (several values joined by ","), where go-httpbin writes a list: `"Host": "httpbin.org"`, not
// `"Host": ["httpbin.org"]`. A document's check of an echoed field reads httpbin.org's shape, so
// the stand-in rewrites go-httpbin's JSON to it on the endpoints that echo the request.

// echoEndpoint reports whether path is an httpbin endpoint whose JSON echoes the request.
func echoEndpoint(path string) bool {
	switch path {
	case "/get", "/headers", "/post", "/put", "/patch", "/delete", "/anything":
		return true
	}
	return strings.HasPrefix(path, "/anything/") || strings.HasPrefix(path, "/delay/")
}

// echoedMaps are the keys of an echo's JSON whose values are name -> list in go-httpbin and
// name -> string in httpbin.org.
var echoedMaps = []string{"headers", "args", "form"}

// httpbinOrgShape serves r with serve and, for an echo endpoint's JSON, writes it in httpbin.org's
// shape (keys sorted, two-space indent, as httpbin.org prints it). Any other response passes
// through unchanged.
func httpbinOrgShape(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter)) {
	if !echoEndpoint(r.URL.Path) {
		serve(w)
		return
	}
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	serve(rec)
	body := rec.body.Bytes()
	if strings.HasPrefix(rec.header.Get("Content-Type"), "application/json") {
		if shaped, ok := reshapeEcho(body); ok {
			body = shaped
			rec.header.Set("Content-Length", strconv.Itoa(len(body)))
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// reshapeEcho turns each list in the echoed maps into its values joined by ","; ok=false leaves
// a body that is not such a JSON object as it is.
func reshapeEcho(body []byte) ([]byte, bool) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	for _, key := range echoedMaps {
		m, ok := doc[key].(map[string]any)
		if !ok {
			continue
		}
		for name, v := range m {
			list, ok := v.([]any)
			if !ok {
				continue
			}
			parts := make([]string, 0, len(list))
			for _, x := range list {
				s, ok := x.(string)
				if !ok {
					return nil, false
				}
				parts = append(parts, s)
			}
			m[name] = strings.Join(parts, ",")
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, false
	}
	return out.Bytes(), true
}

// bufferedResponse holds a response until it is reshaped.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
