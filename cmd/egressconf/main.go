// Command egressconf runs the egress conformance catalog: list, render, validate and run.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

const usage = `egressconf: end-to-end conformance of service-mesh egress control.

Usage:
  egressconf list [--json] [--catalog DIR]...        groups, steps and expectation IDs
  egressconf render GROUP [--catalog DIR]...         every manifest a group applies, in order, as YAML
  egressconf render --asm FILE                       the native Istio resources of an ASMEgressTrafficPolicy
  egressconf validate [PATH...]                      check the built-in catalog, or scenario dirs/files
  egressconf run --backend sim|kind|existing [...]   run the suite and write reports/<run>/
  egressconf mutate [--catalog DIR]... [--group G]   leave out each change, check that verdicts flip (offline)
  egressconf compare RUN_A RUN_B                     per-ID differences of two runs (results.json)
  egressconf version [--json]                        egressconf and the Istio, kind, client-go, Helm modules in it

Run "egressconf COMMAND -h" for a command's flags.

Exit codes:
  0    nothing failed: PASSED, PARTIAL (a subset, or non-capability skips) or INCONCLUSIVE (nothing passed);
       only PASSED is full conformance (the reports say which)
  1    run: FAILED (an expectation failed, erred or did not run; a teardown failed); compare: the runs
       differ; mutate: an expectation is not discriminating; validate: the catalog is invalid; any error
  2    bad usage: an unknown command or flag, a flag value refused
  130  INTERRUPTED (Ctrl-C or SIGTERM): the reports say interrupted and list what did not run
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "list":
		err = cmdList(args)
	case "render":
		err = cmdRender(args)
	case "validate":
		err = cmdValidate(args)
	case "run":
		err = cmdRun(args)
	case "compare":
		err = cmdCompare(args)
	case "mutate":
		err = cmdMutate(args)
	case "version":
		err = cmdVersion(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "egressconf: %s\n\n%s", ue.msg, usage)
			os.Exit(2)
		}
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(ex.code)
		}
		fmt.Fprintf(os.Stderr, "egressconf: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// exitError ends the command with a code after it printed its own output.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*s = append(*s, x)
		}
	}
	return nil
}

// parse parses flags allowing them after positional arguments too.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
