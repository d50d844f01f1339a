# Shared helpers for bench/images.sh and bench/run.sh (sourced, not run).
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
CACHE=${BENCH_CACHE:-$BENCH_DIR/.cache}
BIN=$CACHE/bin
REG_ADDR=${BENCH_REGISTRY:-127.0.0.1:5099}
# shellcheck disable=SC2034 # used by the scripts that source this file
IMAGES=(bookworm bookworm-py-java npm-app go-app)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# debian_mirror prints the host's Debian mirror for the main archive. It is read at run time so
# that no mirror host is written into the repository.
debian_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822: take the URIs of the first stanza whose Suites names plain bookworm.
		uri=$(awk '
			/^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) { print u; exit } u=""; s=""; next }
			/^URIs:/ { u=$2 }
			/^Suites:/ { $1=""; s=$0 }
			END { if (u != "" && s ~ /(^| )bookworm( |$)/) print u }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1)=="bookworm") { print $i; exit } } }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	return 1
}

# start_registry runs Debian's docker-registry on REG_ADDR with storage under the cache and
# records its pid; stop_registry ends exactly that process.
start_registry() {
	if curl -fsS "http://$REG_ADDR/v2/" >/dev/null 2>&1; then
		log "registry already answering on $REG_ADDR"
		return
	fi
	command -v docker-registry >/dev/null || die "docker-registry not installed (apt-get install docker-registry)"
	mkdir -p "$CACHE/registry"
	cat >"$CACHE/registry/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE/registry/storage
  delete:
    enabled: true
http:
  addr: $REG_ADDR
CFG
	docker-registry serve "$CACHE/registry/config.yml" >"$CACHE/registry/registry.log" 2>&1 &
	echo $! >"$CACHE/registry/pid"
	for _ in $(seq 50); do
		curl -fsS "http://$REG_ADDR/v2/" >/dev/null 2>&1 && { log "registry up on $REG_ADDR"; return; }
		sleep 0.2
	done
	die "registry did not start; see $CACHE/registry/registry.log"
}

stop_registry() {
	local pidf=$CACHE/registry/pid
	[ -f "$pidf" ] || return 0
	kill "$(cat "$pidf")" 2>/dev/null || true
	rm -f "$pidf"
}

# benchtool builds (once per run) the helper that writes layers, pushes images and scores results.
benchtool() {
	if [ ! -x "$BIN/benchtool" ] || [ -n "$(find "$BENCH_DIR/cmd/benchtool" -newer "$BIN/benchtool" -name '*.go')" ]; then
		(cd "$REPO_DIR" && go build -o "$BIN/benchtool" ./bench/cmd/benchtool) || die "build benchtool"
	fi
	"$BIN/benchtool" "$@"
}
