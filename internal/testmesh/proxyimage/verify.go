package proxyimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/egressconf/egressconf/internal/testmesh/imagebuild"
)

// ExtractRootfs unpacks the flattened filesystem of the archive's image into dir (created):
// directories, regular files, symlinks and hard links, with their modes, and their owners when
// running as root.
func ExtractRootfs(archive, dir string) error {
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return fmt.Errorf("proxyimage: %s: %w", archive, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	root := os.Geteuid() == 0
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("proxyimage: %s: %w", archive, err)
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(dir, name)
		mode := h.FileInfo().Mode()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("proxyimage: %s: %w", name, err)
			}
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
			if root {
				os.Lchown(p, h.Uid, h.Gid)
			}
			continue
		case tar.TypeLink:
			os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
			continue
		default:
			continue
		}
		if root {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
			}
		}
		if err := os.Chmod(p, mode.Perm()|mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
	}
}

// Check is one command Verify ran and what it printed.
type Check struct {
	Command string
	Output  string
}

// Verify unpacks the archive's rootfs into dir and runs its programs in it with chroot (root
// needed): envoy --version, pilot-agent version, and, in a fresh network and mount namespace
// (unshare -n -m, with a dummy eth0 and /proc as in a pod), pilot-agent istio-iptables as istio-init runs it, then iptables-nft-save to count the ISTIO
// rules it installed. It fails unless each command succeeds and at least one ISTIO rule is there.
func Verify(ctx context.Context, archive, dir string) ([]Check, error) {
	if err := ExtractRootfs(archive, dir); err != nil {
		return nil, err
	}
	// Each program runs as in a pod: its own network namespace with an address on eth0
	// (istio-iptables wants one), /proc and /dev (the host's, bound) mounted.
	for _, d := range []string{"proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o555); err != nil {
			return nil, fmt.Errorf("proxyimage: %w", err)
		}
	}
	var checks []Check
	inPod := func(cmds ...string) (string, error) {
		script := "set -e\n" +
			"ip link set lo up; ip link add eth0 type veth peer name veth0; ip addr add 10.244.0.5/24 dev eth0; ip link set eth0 up\n" +
			"mount -t proc proc " + dir + "/proc; mount --rbind /dev " + dir + "/dev\n"
		for _, c := range cmds {
			script += "echo '--- " + c + "'\nchroot " + dir + " " + c + "\n"
		}
		out, err := imagebuild.Run(ctx, "", nil, "unshare", "-n", "-m", "sh", "-c", script)
		s := strings.TrimSpace(string(out))
		checks = append(checks, Check{Command: "unshare -n -m, chroot " + dir + ": " + strings.Join(cmds, "; "), Output: s})
		return s, err
	}
	if _, err := inPod(EnvoyPath + " --version"); err != nil {
		return checks, err
	}
	if out, err := inPod(AgentPath + " version"); err != nil {
		return checks, err
	} else if !strings.Contains(out, "Version:") {
		return checks, fmt.Errorf("proxyimage: pilot-agent version printed no version:\n%s", out)
	}
	out, err := inPod(AgentPath+" istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT", "/usr/sbin/iptables-nft-save")
	if err != nil {
		return checks, err
	}
	_, saved, _ := strings.Cut(out, "--- /usr/sbin/iptables-nft-save")
	n := 0
	for _, l := range strings.Split(saved, "\n") {
		if strings.HasPrefix(l, "-A ISTIO") || (strings.HasPrefix(l, "-A ") && strings.Contains(l, "-j ISTIO")) {
			n++
		}
	}
	checks = append(checks, Check{Command: "count ISTIO rules in iptables-nft-save", Output: fmt.Sprint(n)})
	if n == 0 {
		return checks, fmt.Errorf("proxyimage: istio-iptables installed no ISTIO rules:\n%s", out)
	}
	return checks, nil
}
