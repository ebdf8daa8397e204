// Package probe turns a document's curl command into a request, builds the one curl invocation
// that captures status, exit code, headers, body and timing together, and parses its output.
package probe

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
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
	// FollowRedirects is -L: curl follows a 3xx response's Location, printing every response's
	// headers (outcome.Observed.Hops).
	FollowRedirects bool `json:"followRedirects,omitempty"`
	// Insecure is -k: curl accepts any server certificate.
	Insecure bool `json:"insecure,omitempty"`
	// MaxTime is the document's own -m/--max-time: it bounds this request instead of the run's
	// --probe-max-time, since it decides when curl gives up (exit 28).
	MaxTime time.Duration `json:"maxTime,omitempty"`
	// Resolve are the document's --resolve entries (host:port:addr[,addr...]), as written.
	Resolve []string `json:"resolve,omitempty"`
	// Command is the document's command as written, for reports.
	Command string `json:"command"`

	// explicitMethod: the command names its method with -X. curl keeps such a method on every
	// redirect hop (without -X a POST becomes a GET after a 301/302/303), so with -L it is kept.
	explicitMethod bool
}

// MaxMaxTime bounds a document's --max-time: a probe is one request, and the live backend waits
// for it.
const MaxMaxTime = 300 * time.Second

// Short options curl reads in a cluster (-sSI, -sSo /dev/null): those taking a value take the rest
// of the word, or the next word when the rest is empty, as curl does.
var (
	shortLong = map[byte]string{'I': "--head", 's': "--silent", 'S': "--show-error", 'v': "--verbose", 'i': "--include",
		'L': "--location", 'k': "--insecure", 'o': "--output", 'w': "--write-out", 'X': "--request", 'H': "--header",
		'd': "--data", 'D': "--dump-header", 'm': "--max-time"}
	takesValue = map[string]bool{"--output": true, "--write-out": true, "--request": true, "--header": true, "--data": true,
		"--data-raw": true, "--dump-header": true, "--max-time": true, "--resolve": true}
	noValue = map[string]bool{"--head": true, "--silent": true, "--show-error": true, "--verbose": true, "--include": true,
		"--location": true, "--insecure": true}
)

const supportedFlags = "-I -X -H -d -s -S -o -w -v -i -L -D -m/--max-time -k --resolve, short ones combined as in -sSL"

// ParseCurl reads a curl command line as the documents write it, optionally after the shell's
// `time` keyword (which only times the command). Output-shaping flags (-s, -S, -o, -w, -v, -i,
// -D) are accepted and dropped: the probe decides how output is captured. Unknown flags are an
// error so a typo never silently changes the request.
func ParseCurl(cmd string) (*Request, error) {
	args, err := splitArgs(cmd)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 && args[0] == "time" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] != "curl" {
		return nil, fmt.Errorf("curl command %q: must start with curl (or time curl)", cmd)
	}
	r := &Request{Command: cmd}
	head := false
	// option applies one flag; shown is how the command wrote it, for errors.
	option := func(long, shown, v string) error {
		switch long {
		case "--head":
			head = true
		case "--location":
			r.FollowRedirects = true
		case "--insecure":
			r.Insecure = true
		case "--silent", "--show-error", "--verbose", "--include", "--output", "--write-out", "--dump-header":
		case "--request":
			if !isToken(v) {
				return fmt.Errorf("curl command %q: %s %q: the method must be an HTTP token (letters, digits, !#$%%&'*+-.^_`|~)", cmd, shown, v)
			}
			// Kept as written: curl sends -X's method verbatim, and HTTP methods are case-sensitive.
			r.Method, r.explicitMethod = v, true
		case "--header":
			// curl sends "Name: value", removes a header with "Name:" and sends an empty one with
			// "Name;"; anything else it would not send as the document meant.
			name, _, ok := strings.Cut(v, ":")
			if !ok {
				if n, rest, semi := strings.Cut(v, ";"); semi && strings.TrimSpace(rest) == "" {
					name, ok = n, true
				}
			}
			if !ok || !isToken(strings.TrimSpace(name)) || strings.TrimSpace(name) != name {
				return fmt.Errorf("curl command %q: %s %q: a header is \"Name: value\" (or \"Name;\") with a valid name", cmd, shown, v)
			}
			r.Headers = append(r.Headers, v)
		case "--data", "--data-raw":
			r.Data = v
		case "--max-time":
			d, err := parseSeconds(v)
			if err != nil {
				return fmt.Errorf("curl command %q: %s %q: %v", cmd, shown, v, err)
			}
			r.MaxTime = d
		case "--resolve":
			if err := checkResolve(v); err != nil {
				return fmt.Errorf("curl command %q: %s %q: %v", cmd, shown, v, err)
			}
			r.Resolve = append(r.Resolve, v)
		}
		return nil
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		next := func(shown string) (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("curl command %q: %s needs a value", cmd, shown)
			}
			i++
			return args[i], nil
		}
		switch {
		case strings.HasPrefix(a, "--"):
			if !takesValue[a] && !noValue[a] {
				return nil, fmt.Errorf("curl command %q: flag %s is not supported (supported: %s)", cmd, a, supportedFlags)
			}
			v := ""
			if takesValue[a] {
				if v, err = next(a); err != nil {
					return nil, err
				}
			}
			if err := option(a, a, v); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				letter := "-" + a[j:j+1]
				shown := letter
				if len(a) > 2 {
					shown += " (in " + a + ")"
				}
				long, ok := shortLong[a[j]]
				if !ok {
					return nil, fmt.Errorf("curl command %q: flag %s is not supported (supported: %s)", cmd, shown, supportedFlags)
				}
				v := ""
				if takesValue[long] {
					if v = a[j+1:]; v == "" {
						if v, err = next(shown); err != nil {
							return nil, err
						}
					}
					j = len(a)
				}
				if err := option(long, letter, v); err != nil {
					return nil, err
				}
			}
		case strings.HasPrefix(a, "-"):
			return nil, fmt.Errorf("curl command %q: flag %s is not supported (supported: %s)", cmd, a, supportedFlags)
		default:
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

// secondsPattern is the plain decimal curl documents for --max-time; curl reads other spellings
// (1e3, 0x10) differently across versions, so they are refused.
var secondsPattern = regexp.MustCompile(`^[0-9]{1,4}(\.[0-9]{1,3})?$`)

// parseSeconds reads a --max-time value: positive, at most MaxMaxTime, millisecond precision
// (curl's own).
func parseSeconds(v string) (time.Duration, error) {
	if !secondsPattern.MatchString(v) {
		return 0, fmt.Errorf("want seconds as a decimal number (3, 0.5)")
	}
	f, _ := strconv.ParseFloat(v, 64)
	d := time.Duration(math.Round(f*1000)) * time.Millisecond
	if d <= 0 {
		// curl reads 0 as no limit at all, which no probe can wait for.
		return 0, fmt.Errorf("must be above 0")
	}
	if d > MaxMaxTime {
		return 0, fmt.Errorf("at most %s for one probe", MaxMaxTime)
	}
	return d, nil
}

// checkResolve accepts curl's HOST:PORT:ADDRESS[,ADDRESS...] with a DNS name, a port in range and
// IP addresses (IPv6 in brackets); curl's other forms (+host, -host, *) are refused.
func checkResolve(v string) error {
	const want = "want HOST:PORT:ADDRESS[,ADDRESS...] with IP addresses"
	host, rest, ok := strings.Cut(v, ":")
	if !ok || !validHost(host) || net.ParseIP(host) != nil {
		return fmt.Errorf("%s (the host must be a DNS name)", want)
	}
	port, addrs, ok := strings.Cut(rest, ":")
	if n, err := strconv.Atoi(port); !ok || err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%s (the port must be 1..65535)", want)
	}
	for _, a := range strings.Split(addrs, ",") {
		if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
			a = a[1 : len(a)-1]
			if ip := net.ParseIP(a); ip == nil || ip.To4() != nil {
				return fmt.Errorf("%s: %q is not an IPv6 address", want, a)
			}
			continue
		}
		if ip := net.ParseIP(a); ip == nil || ip.To4() == nil {
			return fmt.Errorf("%s: %q is not an IPv4 address (IPv6 goes in brackets)", want, a)
		}
	}
	return nil
}

// ResolvesTarget reports whether one of the request's --resolve entries applies to its URL (curl
// uses an entry only for its exact host and port): the connection then goes to that address,
// not to what DNS says.
func (r *Request) ResolvesTarget() bool {
	for _, e := range r.Resolve {
		host, rest, _ := strings.Cut(e, ":")
		port, _, _ := strings.Cut(rest, ":")
		if strings.EqualFold(host, r.Host) && port == strconv.Itoa(r.Port) {
			return true
		}
	}
	return false
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

// splitArgs splits a command line with POSIX shell quoting ('...', "...", backslash). It works on
// bytes and copies them as they are: a shell passes non-ASCII (even invalid UTF-8) through unchanged.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
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
			cur.WriteByte(c)
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
	// LocalPorts is how many ports from LocalPort curl may bind (--local-port N-M): a request that
	// follows redirects opens a connection per hop while the first is still open. 0 or 1 is
	// LocalPort alone.
	LocalPorts int
}

// Args builds curl's argument list (without "curl") for the request: headers are written to stdout
// before the body (-D -, or -I's own output for HEAD), then Marker and %{json}.
func Args(r *Request, o Options) []string {
	args := []string{"-sS"}
	if r.Method == "HEAD" {
		args = append(args, "-I")
	} else {
		args = append(args, "-D", "-")
		// Without -X curl sends GET, or POST when there is data: name any other method. With -L
		// a method the document names stays named: curl keeps it on every hop.
		if (r.Data == "" && r.Method != "GET") || (r.Data != "" && r.Method != "POST") || (r.FollowRedirects && r.explicitMethod) {
			args = append(args, "-X", r.Method)
		}
	}
	if r.FollowRedirects {
		args = append(args, "-L")
	}
	if r.Insecure {
		args = append(args, "-k")
	}
	for _, h := range r.Headers {
		args = append(args, "-H", h)
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if o.LocalPort > 0 {
		ports := strconv.Itoa(o.LocalPort)
		if o.LocalPorts > 1 {
			ports += "-" + strconv.Itoa(o.LocalPort+o.LocalPorts-1)
		}
		args = append(args, "--local-port", ports)
	}
	if r.Data != "" {
		args = append(args, "--data-raw", r.Data)
	}
	// The document's --max-time bounds the connect too (curl's own connect limit, 300 s, is
	// above MaxMaxTime): the run's shorter connect bound would end it sooner than the line does.
	if o.ConnectTimeout > 0 && r.MaxTime == 0 {
		args = append(args, "--connect-timeout", seconds(o.ConnectTimeout))
	}
	if mt := r.EffectiveMaxTime(o); mt > 0 {
		args = append(args, "--max-time", seconds(mt))
	}
	if o.CACert != "" {
		args = append(args, "--cacert", o.CACert)
	}
	for _, res := range r.Resolve {
		args = append(args, "--resolve", res)
	}
	for _, res := range o.Resolve {
		args = append(args, "--resolve", res)
	}
	args = append(args, "-w", Marker+"%{json}", r.URL)
	return args
}

// EffectiveMaxTime is the --max-time curl runs with: the document's own, else the run's bound.
func (r *Request) EffectiveMaxTime(o Options) time.Duration {
	if r.MaxTime > 0 {
		return r.MaxTime
	}
	return o.MaxTime
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
	// NumRedirects is how many redirects curl followed: the output holds that many responses
	// before the final one (and any 1xx interim responses), the rest is the body.
	NumRedirects *int `json:"num_redirects"`
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
	limit := -1
	if wo.NumRedirects != nil && *wo.NumRedirects >= 0 {
		limit = *wo.NumRedirects + 1
	}
	obs.Headers, obs.Hops, obs.Body = splitResponse(stdout[:i], limit)
	// curl -L that followed a redirect and then got no response (a timeout, a reset) still
	// reports the redirect's %{http_code}: the request it ended on had no response, so the
	// outcome is that failure, with the redirect kept as a hop.
	if exitCode != 0 && wo.NumRedirects != nil && *wo.NumRedirects > 0 && len(obs.Hops) == *wo.NumRedirects {
		obs.HTTPCode, obs.HTTPVersion, obs.Headers, obs.Body = 0, "", nil, ""
	}
	return obs, nil
}

// splitResponse separates header blocks (every block that starts with an HTTP status line: 1xx
// interim responses, each response of a redirect chain curl followed, the final response) from
// the body. It returns the last block's headers, every non-1xx block as a hop, and the body. At
// most limit hops are read (curl's num_redirects + 1; -1 when unknown), so a body that itself
// starts with "HTTP/" stays the body.
func splitResponse(out string, limit int) (map[string]string, []outcome.Hop, string) {
	rest := out
	var last map[string]string
	var hops []outcome.Hop
	for strings.HasPrefix(rest, "HTTP/") && (limit < 0 || len(hops) < limit) {
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
		if h := statusLine(block); h.Status < 100 || h.Status >= 200 {
			h.Headers = last
			hops = append(hops, h)
		}
	}
	if last == nil {
		return nil, nil, out
	}
	return last, hops, rest
}

// statusLine reads "HTTP/1.1 301 Moved Permanently" or "HTTP/2 200"; a malformed line gives
// status 0.
func statusLine(block string) outcome.Hop {
	line, _, _ := strings.Cut(block, "\n")
	f := strings.Fields(strings.TrimSuffix(line, "\r"))
	var h outcome.Hop
	if len(f) >= 2 {
		h.HTTPVersion = strings.TrimPrefix(f[0], "HTTP/")
		if n, err := strconv.Atoi(f[1]); err == nil && len(f[1]) == 3 && n >= 100 {
			h.Status = n
		}
	}
	return h
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
