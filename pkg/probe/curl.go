// Package probe turns a document's curl command into a request, builds the one curl invocation
// that captures status, exit code, headers, body and timing together, and parses its output.
package probe

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/egressconf/egressconf/pkg/outcome"
)

// Request is a document's curl request, reduced to what reaches the network.
type Request struct {
	// Method is the HTTP method: HEAD for -I, the -X value, POST for -d, else GET.
	Method string `json:"method"`
	// URL is the target as written (scheme, host, optional port, path).
	URL     string   `json:"url"`
	Scheme  string   `json:"scheme"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Path    string   `json:"path"`
	Headers []string `json:"headers,omitempty"`
	Data    string   `json:"data,omitempty"`
	// Command is the document's command as written, for reports.
	Command string `json:"command"`
}

// ParseCurl reads a curl command line as the documents write it. Output-shaping flags
// (-s, -o, -w, -v, -i, -k is refused) are accepted and dropped: the probe decides how output is
// captured. Unknown flags are an error so a typo never silently changes the request.
func ParseCurl(cmd string) (*Request, error) {
	args, err := splitArgs(cmd)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 || args[0] != "curl" {
		return nil, fmt.Errorf("curl command %q: must start with curl", cmd)
	}
	r := &Request{Command: cmd}
	head := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("curl command %q: %s needs a value", cmd, a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-I", "--head":
			head = true
		case "-s", "--silent", "-S", "--show-error", "-v", "--verbose", "-i", "--include", "-sS":
		case "-o", "--output", "-w", "--write-out":
			if _, err := next(); err != nil {
				return nil, err
			}
		case "-X", "--request":
			v, err := next()
			if err != nil {
				return nil, err
			}
			if !isToken(v) {
				return nil, fmt.Errorf("curl command %q: -X %q: the method must be an HTTP token (letters, digits, !#$%%&'*+-.^_`|~)", cmd, v)
			}
			r.Method = strings.ToUpper(v)
		case "-H", "--header":
			v, err := next()
			if err != nil {
				return nil, err
			}
			// curl sends "Name: value", removes a header with "Name:" and sends an empty one with
			// "Name;"; anything else it would not send as the document meant.
			name, _, ok := strings.Cut(v, ":")
			if !ok {
				if n, rest, semi := strings.Cut(v, ";"); semi && strings.TrimSpace(rest) == "" {
					name, ok = n, true
				}
			}
			if !ok || !isToken(strings.TrimSpace(name)) || strings.TrimSpace(name) != name {
				return nil, fmt.Errorf("curl command %q: -H %q: a header is \"Name: value\" (or \"Name;\") with a valid name", cmd, v)
			}
			r.Headers = append(r.Headers, v)
		case "-d", "--data", "--data-raw":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.Data = v
		default:
			if strings.HasPrefix(a, "-") {
				return nil, fmt.Errorf("curl command %q: flag %s is not supported (supported: -I -X -H -d -s -S -o -w -v -i)", cmd, a)
			}
			if r.URL != "" {
				return nil, fmt.Errorf("curl command %q: more than one URL", cmd)
			}
			r.URL = a
		}
	}
	if r.URL == "" {
		return nil, fmt.Errorf("curl command %q: no URL", cmd)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("curl command %q: %v", cmd, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("curl command %q: URL scheme must be http or https", cmd)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("curl command %q: URL has no host", cmd)
	}
	if !validHost(u.Hostname()) {
		return nil, fmt.Errorf("curl command %q: host %q is not a DNS name or an IP address (letters, digits, '-' and '.')", cmd, u.Hostname())
	}
	r.Scheme, r.Host, r.Path = u.Scheme, u.Hostname(), u.EscapedPath()
	if r.Path == "" {
		r.Path = "/"
	}
	if u.RawQuery != "" {
		r.Path += "?" + u.RawQuery
	}
	r.Port = 80
	if u.Scheme == "https" {
		r.Port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("curl command %q: port %s: must be between 1 and 65535", cmd, p)
		}
		r.Port = n
	}
	switch {
	case head && r.Method != "":
		return nil, fmt.Errorf("curl command %q: -I and -X together", cmd)
	case head && r.Data != "":
		return nil, fmt.Errorf("curl command %q: -I and -d together (curl refuses them)", cmd)
	case r.Data != "" && (r.Method == "GET" || r.Method == "HEAD"):
		// curl would send that method with a body, which no document means; the usual intent is a POST.
		return nil, fmt.Errorf("curl command %q: -X %s with -d sends a %s request with a body; drop -X for a POST, or -d for a %s", cmd, r.Method, r.Method, r.Method)
	case head:
		r.Method = "HEAD"
	case r.Method == "" && r.Data != "":
		r.Method = "POST"
	case r.Method == "":
		r.Method = "GET"
	}
	return r, nil
}

// validHost reports whether h is an IP address or an ASCII DNS name, the hosts a ServiceEntry and
// the stand-in can name (curl would IDN-convert or refuse anything else).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isToken reports whether s is an HTTP token (RFC 9110 tchar+), as a method or header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// splitArgs splits a command line with POSIX shell quoting ('...', "...", backslash).
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, quote := false, rune(0)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && strings.ContainsRune(`"\$`+"`", rune(s[i+1])) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command %q: unterminated quote", s)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// Marker separates curl's output from its write-out JSON. It cannot occur in a body by chance.
const Marker = "\n::egressconf-writeout-7f3a9c::"

// Options shape the invocation.
type Options struct {
	// ConnectTimeout bounds connection setup (curl --connect-timeout).
	ConnectTimeout time.Duration
	// MaxTime bounds the whole request (curl --max-time).
	MaxTime time.Duration
	// CACert is a CA bundle path in the client to trust (curl --cacert); empty uses the default.
	CACert string
	// Resolve pins host:port:address (curl --resolve), used by loopback tests.
	Resolve []string
	// Headers are sent in addition to the request's own (curl -H), e.g. a probe marker.
	Headers []string
	// LocalPort is the client's source port (curl --local-port); 0 lets the kernel pick. A live
	// backend uses it to find the proxy's log entries of a request that carries no headers.
	LocalPort int
}

// Args builds curl's argument list (without "curl") for the request: headers are written to stdout
// before the body (-D -, or -I's own output for HEAD), then Marker and %{json}.
func Args(r *Request, o Options) []string {
	args := []string{"-sS"}
	if r.Method == "HEAD" {
		args = append(args, "-I")
	} else {
		args = append(args, "-D", "-")
		// Without -X curl sends GET, or POST when there is data: name any other method.
		if (r.Data == "" && r.Method != "GET") || (r.Data != "" && r.Method != "POST") {
			args = append(args, "-X", r.Method)
		}
	}
	for _, h := range r.Headers {
		args = append(args, "-H", h)
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if o.LocalPort > 0 {
		args = append(args, "--local-port", strconv.Itoa(o.LocalPort))
	}
	if r.Data != "" {
		args = append(args, "--data-raw", r.Data)
	}
	if o.ConnectTimeout > 0 {
		args = append(args, "--connect-timeout", seconds(o.ConnectTimeout))
	}
	if o.MaxTime > 0 {
		args = append(args, "--max-time", seconds(o.MaxTime))
	}
	if o.CACert != "" {
		args = append(args, "--cacert", o.CACert)
	}
	for _, res := range o.Resolve {
		args = append(args, "--resolve", res)
	}
	args = append(args, "-w", Marker+"%{json}", r.URL)
	return args
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// writeOut is the part of curl's %{json} the probe reads.
type writeOut struct {
	HTTPCode    int     `json:"http_code"`
	HTTPVersion string  `json:"http_version"`
	ExitCode    *int    `json:"exitcode"`
	ErrorMsg    string  `json:"errormsg"`
	TimeTotal   float64 `json:"time_total"`
}

// ParseOutput reads one curl run: its stdout, stderr and exit code (as the process reported it).
// An output without the write-out marker means curl did not run as built (not installed, killed,
// too old for %{json}): that is an error, never an outcome.
func ParseOutput(stdout, stderr string, exitCode int) (outcome.Observed, error) {
	obs := outcome.Observed{ExitCode: exitCode}
	i := strings.LastIndex(stdout, Marker)
	if i < 0 {
		return obs, fmt.Errorf("curl output has no write-out (exit %d, stderr %q): curl did not run as expected", exitCode, clip(stderr, 200))
	}
	var wo writeOut
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout[i+len(Marker):])), &wo); err != nil {
		return obs, fmt.Errorf("curl write-out is not JSON: %v", err)
	}
	if wo.ExitCode != nil && *wo.ExitCode != exitCode {
		return obs, fmt.Errorf("curl reported exit code %d but the process exited %d", *wo.ExitCode, exitCode)
	}
	obs.HTTPCode = wo.HTTPCode
	if wo.HTTPCode > 0 {
		obs.HTTPVersion = wo.HTTPVersion
	}
	obs.ErrorMessage = wo.ErrorMsg
	if obs.ErrorMessage == "" {
		obs.ErrorMessage = strings.TrimSpace(stderr)
	}
	obs.Duration = time.Duration(wo.TimeTotal * float64(time.Second))
	obs.Headers, obs.Body = splitResponse(stdout[:i])
	return obs, nil
}

// splitResponse separates header blocks (every block that starts with an HTTP status line:
// 100 Continue, then the final response) from the body and keeps the final block's headers.
func splitResponse(out string) (map[string]string, string) {
	rest := out
	var last map[string]string
	for strings.HasPrefix(rest, "HTTP/") {
		end := strings.Index(rest, "\r\n\r\n")
		sep := 4
		if e2 := strings.Index(rest, "\n\n"); e2 >= 0 && (end < 0 || e2 < end) {
			end, sep = e2, 2
		}
		block := rest
		if end < 0 {
			rest = ""
		} else {
			block, rest = rest[:end], rest[end+sep:]
		}
		last = parseHeaderBlock(block)
	}
	if last == nil {
		return nil, out
	}
	return last, rest
}

func parseHeaderBlock(block string) map[string]string {
	h := map[string]string{}
	lines := strings.Split(strings.ReplaceAll(block, "\r\n", "\n"), "\n")
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if prev, dup := h[k]; dup {
			v = prev + ", " + v
		}
		h[k] = v
	}
	return h
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
