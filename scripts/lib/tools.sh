# Shared by scripts/test, scripts/demo and scripts/bench: finds or installs the real parts the project runs against.
# Sets HAPROXY_BIN, PEBBLE_BIN, CHALLTESTSRV_BIN, PEBBLE_2_4_BIN, PEBBLE_LATEST_BIN, ETCD_BIN and ETCDCTL_BIN, and with
# ensure_haproxy_versions HAPROXY_3_0_BIN, HAPROXY_3_2_BIN and HAPROXY_3_4_BIN; certbot goes on PATH.

TOOLS_DIR="${TOOLS_DIR:-$(pwd)/target/tools}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# Installs each `command=package` whose command is found neither on PATH nor in /usr/sbin, from the distribution.
apt_install_missing() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || [ -x "/usr/sbin/${pair%%=*}" ] || missing+=("${pair#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing ${missing[*]} from the distribution" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

# HAProxy itself; socat, with which the test and demo sandboxes talk to HAProxy's master socket; and openssl, whose
# s_server stands for a TLS backend in tests/it/watch.rs.
ensure_haproxy() {
  apt_install_missing haproxy=haproxy socat=socat openssl=openssl
  HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)
}

# The Debian mirror this host's apt uses for its main archive (not -security), read from its sources, so that a host
# behind a local mirror or proxy fetches other suites' packages from there too.
debian_mirror() {
  local codename uri
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  # deb822 stanzas (*.sources): the first `deb` one whose Suites name this release.
  uri=$(awk -v cn="$codename" 'BEGIN { RS = ""; FS = "\n" }
    { types = ""; uris = ""; suites = ""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Types:/) types = $i; if ($i ~ /^URIs:/) uris = $i; if ($i ~ /^Suites:/) suites = $i
      }
      if (types ~ /[ \t]deb([ \t]|$)/ && (suites " ") ~ ("[ \t]" cn " ")) {
        sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
      } }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  # One-line sources (sources.list, *.list): `deb [options] URI suite components`.
  [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v cn="$codename" '
    $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == cn) { print $i; exit } }')
  [ -n "$uri" ] || { echo "cannot find this host's Debian mirror for $codename in /etc/apt/sources.list or sources.list.d" >&2; return 1; }
  echo "${uri%/}"
}

# Fetches Debian <suite>'s <package> and unpacks it into <dest> with `dpkg -x`, writing its version to <dest>/VERSION.
# The apt state is private to $TOOLS_DIR/apt-<suite> (sources, lists, archives), so the system's sources and lists are
# left alone, and each suite keeps its own lists. <version prefix>, when given, is what the package's version must
# start with; nothing is unpacked otherwise.
fetch_debian_deb() {
  local package=$1 suite=$2 dest=$3 want_version=${4:-}
  local apt="$TOOLS_DIR/apt-$suite"
  echo "== fetching $package from Debian $suite into $dest" >&2
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$dest"
  local mirror
  mirror=$(debian_mirror)
  echo "deb $mirror $suite main" > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq
  # Only the package downloaded now may match the glob below: a suite's version moves on.
  rm -f "$apt/archives/${package}"_*.deb
  (cd "$apt/archives" && apt-get "${opts[@]}" download "$package" >/dev/null)
  local debs=("$apt/archives/${package}"_*.deb)
  [ -f "${debs[0]}" ] || { echo "apt-get download $package from $suite left no .deb in $apt/archives" >&2; return 1; }
  local version
  version=$(dpkg-deb -f "${debs[0]}" Version)
  case "$version" in
    "$want_version"*) ;;
    *) echo "Debian $suite's $package is $version, not $want_version" >&2; return 1 ;;
  esac
  dpkg -x "${debs[0]}" "$dest"
  echo "$version" > "$dest/VERSION"
}

# Debian <suite>'s pebble into <dest> (see fetch_debian_deb). The packages are static Go binaries that need only libc,
# so a newer suite's build runs on bookworm too.
fetch_debian_pebble() {
  local suite=$1 dest=$2 want_version=${3:-}
  fetch_debian_deb pebble "$suite" "$dest" "$want_version"
  check_pebble_runs "$dest/usr/bin/pebble" "$suite"
}

# The unpacked binary must start on this machine: `-help` prints Go's flag usage, which lists -config, and exits 0.
# (Captured whole rather than piped into `grep -q`, which would stop reading early and fail the pipe with SIGPIPE.)
check_pebble_runs() {
  local bin=$1 suite=$2 usage
  [ -x "$bin" ] || { echo "pebble from Debian $suite did not unpack to $bin" >&2; return 1; }
  usage=$("$bin" -help 2>&1) && [[ $usage == *-config* ]] ||
    { echo "$bin (from Debian $suite) does not run here: $usage" >&2; return 1; }
}

# Pebble 2.6 (with ARI, no profiles) comes from Debian trixie. The tests run against it by default.
ensure_pebble() {
  PEBBLE_BIN="$TOOLS_DIR/pebble-2.6/usr/bin/pebble"
  CHALLTESTSRV_BIN="$TOOLS_DIR/pebble-2.6/usr/bin/pebble-challtestsrv"
  if [ -x "$PEBBLE_BIN" ] && [ -x "$CHALLTESTSRV_BIN" ]; then return 0; fi
  fetch_debian_pebble trixie "$TOOLS_DIR/pebble-2.6" 2.6
}

# Pebble 2.4 (no ARI, no profiles) is Debian bookworm's, for tests of how hapcert copes with a CA that lacks them.
ensure_pebble_2_4() {
  PEBBLE_2_4_BIN="$TOOLS_DIR/pebble-2.4/usr/bin/pebble"
  if [ -x "$PEBBLE_2_4_BIN" ]; then return 0; fi
  fetch_debian_pebble bookworm "$TOOLS_DIR/pebble-2.4" 2.4
}

# The newest Pebble Debian has (sid's; 2.10 when this was written: ARI and profiles). Its version is whatever sid has
# when it is first fetched; it is recorded in $TOOLS_DIR/pebble-latest/VERSION. Delete that directory to fetch anew.
ensure_pebble_latest() {
  PEBBLE_LATEST_BIN="$TOOLS_DIR/pebble-latest/usr/bin/pebble"
  if [ -x "$PEBBLE_LATEST_BIN" ]; then return 0; fi
  fetch_debian_pebble sid "$TOOLS_DIR/pebble-latest"
}


# HAProxy 3.0 (trixie), 3.2 (sid) and 3.4 (experimental) for `scripts/test --all-haproxy`. Their builds need a newer
# glibc than bookworm's, and installing them would replace the host's 2.6, so each lives in its own debootstrap tree
# under $TOOLS_DIR/haproxy-<version>/root (ignored with target/, built once and reused; about 360 MB each). Next to the
# tree, `haproxy` is a wrapper that runs the tree's binary and can stand in for HAPROXY_BIN (see write_haproxy_wrapper).
# Sets HAPROXY_3_0_BIN, HAPROXY_3_2_BIN and HAPROXY_3_4_BIN to those wrappers. Needs root (debootstrap, chroot, mounts).
ensure_haproxy_versions() {
  apt_install_missing debootstrap=debootstrap unshare=util-linux
  ensure_haproxy_tree 3.0 trixie
  ensure_haproxy_tree 3.2 sid
  ensure_haproxy_tree 3.4 sid experimental
  HAPROXY_3_0_BIN="$TOOLS_DIR/haproxy-3.0/haproxy"
  HAPROXY_3_2_BIN="$TOOLS_DIR/haproxy-3.2/haproxy"
  HAPROXY_3_4_BIN="$TOOLS_DIR/haproxy-3.4/haproxy"
  export HAPROXY_3_0_BIN HAPROXY_3_2_BIN HAPROXY_3_4_BIN
}

# ensure_haproxy_tree <version> <suite> [experimental]: the tree for one HAProxy version. VERSION (the installed
# `haproxy -v` first line) is written last, so a build cut off halfway has none and is thrown away and made again.
ensure_haproxy_tree() {
  local want=$1 suite=$2 extra=${3:-}
  local dir="$TOOLS_DIR/haproxy-$want"
  local root="$dir/root"
  if [ -s "$dir/VERSION" ] && [ -x "$dir/haproxy" ]; then return 0; fi
  echo "== building a $suite${extra:+ + $extra} tree with HAProxy $want in $root (once; a few minutes)" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  local mirror
  mirror=$(debian_mirror)
  as_root debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    { echo "debootstrap $suite failed; see $dir/debootstrap.log" >&2; return 1; }
  # The package's postinst would start the service inside the tree; 101 tells invoke-rc.d not to.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  local apt_opts="" target=""
  # sid's Release file on a mirror can carry a Valid-Until already past; the tree is for tests, not for updates.
  [ "$suite" = sid ] && apt_opts="-o Acquire::Check-Valid-Until=false"
  if [ -n "$extra" ]; then
    echo "deb $mirror $extra main" >"$root/etc/apt/sources.list.d/$extra.list"
    target="-t $extra"
  fi
  # proc is mounted in a mount namespace of its own, so nothing is left mounted in the tree once apt is done.
  as_root unshare --mount --propagation private -- sh -c "mount -t proc proc '$root/proc' && chroot '$root' sh -c '
    apt-get $apt_opts update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends $target haproxy'" \
    >"$dir/install.log" 2>&1 || { echo "installing haproxy in $root failed; see $dir/install.log" >&2; return 1; }
  write_haproxy_wrapper "$root" "$dir/haproxy"
  local line
  line=$("$dir/haproxy" -v 2>&1 | sed -n 1p)
  case "$line" in
    "HAProxy version $want."*) ;;
    *) echo "the $suite tree's haproxy says \"$line\", not HAProxy $want" >&2; return 1 ;;
  esac
  echo "$line" >"$dir/VERSION"
}

# ensure_package_tree <suite>: a Debian tree in which tests/it/package.rs installs the .deb, with man-db (for
# `man -l`) and bash-completion (for completing `hapcert re<TAB>`) added, and ca-certificates (with openssl, which it
# depends on), which a server has and a minbase tree lacks: scripts/walkthrough makes the README's placeholder
# certificate with that openssl. The tests never install into it: they mount an overlay over it, so each run starts
# from the same tree. trixie's is a copy of the HAProxy 3.0 tree (its HAProxy is what a certificate would be issued
# against), copied rather than installed into, since other tests use that tree as it is; bookworm's is a minbase
# debootstrap of its own. READY, written last, holds the list of extras, so a half-built tree, or one built with
# another list, is made again. Sets PACKAGE_TREE to the root.
ensure_package_tree() {
  local suite=$1
  local dir="$TOOLS_DIR/pkgtest-$suite"
  local extras=man-db,bash-completion,ca-certificates
  PACKAGE_TREE="$dir/root"
  if [ -f "$dir/READY" ] && [ "$(cat "$dir/READY")" = "$extras" ]; then return 0; fi
  apt_install_missing debootstrap=debootstrap unshare=util-linux
  echo "== building the $suite tree for the package tests in $PACKAGE_TREE (once; a few minutes)" >&2
  as_root rm -rf "$dir"
  mkdir -p "$dir"
  case "$suite" in
    trixie)
      ensure_haproxy_tree 3.0 trixie
      cp -a --reflink=auto "$TOOLS_DIR/haproxy-3.0/root" "$PACKAGE_TREE"
      as_root unshare --mount --propagation private -- sh -c "mount -t proc proc '$PACKAGE_TREE/proc' &&
        chroot '$PACKAGE_TREE' sh -c 'apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${extras//,/ }'" \
        >"$dir/install.log" 2>&1 || { echo "installing $extras in $PACKAGE_TREE failed; see $dir/install.log" >&2; return 1; }
      ;;
    *)
      local mirror
      mirror=$(debian_mirror)
      as_root debootstrap --variant=minbase --include="$extras" "$suite" "$PACKAGE_TREE" "$mirror" \
        >"$dir/debootstrap.log" 2>&1 || { echo "debootstrap $suite failed; see $dir/debootstrap.log" >&2; return 1; }
      # Nothing a package's scripts start may run inside the tree; 101 tells invoke-rc.d so.
      printf '#!/bin/sh\nexit 101\n' >"$PACKAGE_TREE/usr/sbin/policy-rc.d"
      chmod 755 "$PACKAGE_TREE/usr/sbin/policy-rc.d"
      ;;
  esac
  echo "$extras" >"$dir/READY"
}

# write_haproxy_wrapper <tree> <path>: a script that runs <tree>'s /usr/sbin/haproxy with the caller's arguments and
# working directory. The tests put configs, sockets and certificates under /tmp by absolute path, so the host's /tmp
# is bound over the tree's, with /proc and /sys. The mounts are made in a private mount namespace and vanish with it.
# Every step execs, so the PID the caller started (and signals, and whose master socket reloads) is HAProxy's master,
# and a reload re-executes the tree's own binary.
write_haproxy_wrapper() {
  local root=$1 path=$2
  cat >"$path" <<WRAPPER
#!/bin/sh
exec unshare --mount --propagation private -- /bin/sh -c '
r=\$1; shift
mount --bind /tmp "\$r/tmp" && mount -t proc proc "\$r/proc" && mount --bind /sys "\$r/sys" || exit 70
exec chroot "\$r" /bin/sh -c "cd \\"\\\$1\\" 2>/dev/null || cd /; shift; exec /usr/sbin/haproxy \\"\\\$@\\"" sh "\$PWD" "\$@"
' sh '$root' "\$@"
WRAPPER
  chmod 755 "$path"
}

# Installs each package that dpkg does not list as installed: for what brings no command of its own to look for, like
# a certbot plugin (a Python module, which only Debian's /usr/bin/python3 sees, whatever python3 is first on PATH).
apt_install_missing_packages() {
  local missing=() package
  for package in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing ${missing[*]} from the distribution" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

# certbot, for the tests of `hapcert import certbot`: they make a real /etc/letsencrypt-style tree with it, one lineage
# through its RFC 2136 plugin (a DNS-01 wildcard). Debian bookworm's packages are certbot 2.1 and the plugin 2.1.
ensure_certbot() {
  apt_install_missing certbot=certbot
  apt_install_missing_packages python3-certbot-dns-rfc2136
}

# The peers, the load generator and the peak-RSS meter of scripts/bench: Debian's lego (4.9.1 on bookworm), wrk and
# GNU time. certbot and its RFC 2136 plugin come from ensure_certbot.
ensure_bench_tools() {
  apt_install_missing lego=lego wrk=wrk
  # `time` is also a shell keyword, so `command -v time` would find it: look for the program itself.
  apt_install_missing /usr/bin/time=time
}

# BIND 9 for the DNS lab of the DNS-01 tests (tests/harness/bind.rs): named (primary, secondary, resolver), rndc and
# rndc-confgen from bind9, nsupdate and dig from bind9-dnsutils. The tests run named in the foreground on their own
# ports; the package's service is not used (where systemd runs it, it takes port 53, which the tests avoid).
ensure_bind9() {
  apt_install_missing named=bind9 rndc=bind9 rndc-confgen=bind9 nsupdate=bind9-dnsutils dig=bind9-dnsutils
}

# strace, with which tests/it/crash_points.rs kills hapcert at a chosen system call (`inject=...:signal=KILL`).
ensure_strace() {
  apt_install_missing strace=strace
}

# etcd and etcdctl (Debian's etcd-server and etcd-client; 3.4 on bookworm), for the fleet's store: the tests run a
# 3-member cluster of plain processes on loopback. The package's own service is not used (and under systemd it listens
# on 2379/2380, which the tests avoid).
ensure_etcd() {
  apt_install_missing etcd=etcd-server etcdctl=etcd-client
  ETCD_BIN=$(command -v etcd || echo /usr/bin/etcd)
  ETCDCTL_BIN=$(command -v etcdctl || echo /usr/bin/etcdctl)
  export ETCD_BIN ETCDCTL_BIN
}

# promtool, with which tests/it/watch.rs checks deploy/hapcert-alerts.yml: unpacked from this host's own suite's
# prometheus package into target/tools/prometheus, not installed (the package would start a Prometheus server).
ensure_promtool() {
  PROMTOOL_BIN="$TOOLS_DIR/prometheus/usr/bin/promtool"
  export PROMTOOL_BIN
  [ -x "$PROMTOOL_BIN" ] && return 0
  local suite
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  fetch_debian_deb prometheus "$suite" "$TOOLS_DIR/prometheus"
  [ -x "$PROMTOOL_BIN" ] || { echo "prometheus from Debian $suite did not unpack to $PROMTOOL_BIN" >&2; return 1; }
}

# What tests/it/package.rs needs besides its trees (ensure_package_tree): dpkg-shlibdeps for scripts/package,
# lintian, strip, and debootstrap for the bookworm tree.
ensure_package_tools() {
  apt_install_missing dpkg-shlibdeps=dpkg-dev lintian=lintian strip=binutils debootstrap=debootstrap
}

ensure_test_tools() {
  ensure_haproxy
  ensure_package_tools
  ensure_etcd
  ensure_strace
  ensure_pebble
  ensure_pebble_2_4
  ensure_pebble_latest
  ensure_certbot
  ensure_bind9
  ensure_promtool
}

# `scripts/lib/tools.sh ensure_pebble_latest` (or any function above) runs just that step, e.g. when a test says a tool
# is missing.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then
  set -euo pipefail
  "$@"
fi
