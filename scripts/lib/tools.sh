# Shared by scripts/test, scripts/demo and scripts/bench: finds or installs the real parts the project runs against.
# Sets HAPROXY_BIN, PEBBLE_BIN and CHALLTESTSRV_BIN; certbot goes on PATH.

TOOLS_DIR="${TOOLS_DIR:-$(pwd)/target/tools}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# HAProxy itself, and socat, with which the test and demo sandboxes talk to HAProxy's master socket.
ensure_haproxy() {
  local missing=()
  [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
  command -v socat >/dev/null || missing+=(socat)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} from the distribution" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)
}

# Pebble 2.6 (with ARI) comes from Debian trixie's package. It is a static Go binary, so it runs on bookworm too. We fetch
# it with a private apt state so the system's sources and lists are left alone, and unpack it below target/.
ensure_pebble() {
  PEBBLE_BIN="$TOOLS_DIR/pebble-2.6/usr/bin/pebble"
  CHALLTESTSRV_BIN="$TOOLS_DIR/pebble-2.6/usr/bin/pebble-challtestsrv"
  if [ -x "$PEBBLE_BIN" ] && [ -x "$CHALLTESTSRV_BIN" ]; then return 0; fi
  echo "== fetching pebble 2.6 from Debian trixie into $TOOLS_DIR" >&2
  local apt="$TOOLS_DIR/apt"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$TOOLS_DIR/pebble-2.6"
  echo "deb http://deb.debian.org/debian trixie main" > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq
  (cd "$apt/archives" && apt-get "${opts[@]}" download pebble >/dev/null)
  dpkg -x "$(ls "$apt"/archives/pebble_2.6*.deb | head -n 1)" "$TOOLS_DIR/pebble-2.6"
  "$PEBBLE_BIN" -version >/dev/null 2>&1 || true
  [ -x "$PEBBLE_BIN" ] || { echo "pebble 2.6 did not unpack to $PEBBLE_BIN" >&2; return 1; }
}

# certbot, for the tests of `hapcert import certbot`: they make a real /etc/letsencrypt-style tree with it. Debian
# bookworm's package is certbot 2.1.
ensure_certbot() {
  command -v certbot >/dev/null && return 0
  echo "== installing certbot from the distribution" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq certbot >/dev/null
}

ensure_test_tools() {
  ensure_haproxy
  ensure_pebble
  ensure_certbot
}
