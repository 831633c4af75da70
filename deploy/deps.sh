#!/bin/sh
# deploy/deps.sh - install the Debian 12 packages edgemail needs to build,
# run its dev stack and pass its tests.  Installs only what is missing, so
# `make run` and `make check` can call it every time at almost no cost.
# Never starts system daemons: a policy-rc.d that exits 101 is put in place
# first when none exists (Debian's way to keep postinst scripts from
# starting services).
set -eu

PKGS="build-essential pkg-config clang
libmicrohttpd-dev libssl-dev libjansson-dev libcurl4-openssl-dev
libopendkim-dev libclamav-dev libhiredis-dev
dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
dovecot-managesieved redis-server rspamd
opendkim-tools clamav-testfiles zip unzip publicsuffix
swaks libnet-ssleay-perl libio-socket-ssl-perl python3 python3-dkim python3-aiosmtpd python3-dnspython python3-cryptography python3-nacl
libfiu-dev fiu-utils openssl ca-certificates curl procps"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
