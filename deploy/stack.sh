#!/bin/sh
# deploy/stack.sh - the dev stack behind `make run`, and the set-up step of
# the scenario tests.
#
#   deploy/stack.sh init [RUN_DIR]   create (or complete) a run directory
#   deploy/stack.sh run  [RUN_DIR]   init, start Dovecot, the API and the
#                                    relay; stop them all on Ctrl-C
#   deploy/stack.sh stop [RUN_DIR]   stop what RUN_DIR/pids/ names
#
# RUN_DIR defaults to $RUN_DIR, then ./run.  Everything lives in it: a
# self-signed CA and a server certificate (tls/), the request-signing key
# (keys/hmac.keys), the directory (directory/users, a Dovecot passwd-file
# with demo@example.test, whose password is in demo.password), the
# mailboxes (mail/), edgemail.conf and Dovecot's own configuration and
# sockets (dovecot/).  init is idempotent: keys, certificates and passwords
# are made once; the two configuration files are written anew each time
# from the ports below, so that they always match them.
#
# Ports (127.0.0.1 only), from the environment:
#   API_PORT=8443 IMAP_PORT=1143 IMAPS_PORT=1993 POP3_PORT=1110
#   POP3S_PORT=1995 SIEVE_PORT=14190 SUBMIT_PORT=1587 SUBMITS_PORT=1465
# SMARTHOST=host:port sets the relay's relayhost; DNS_SERVER=ip:port the
# resolver for DKIM/DMARC lookups (default "none": no lookups at all).
#
# Every process is started and stopped by its PID (RUN_DIR/pids/NAME.pid);
# nothing here looks processes up by name or touches system services.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${EDGEMAIL_BIN:-$TOP/bin}
PATH=$PATH:/usr/sbin:/sbin
export PATH

API_PORT=${API_PORT:-8443}
IMAP_PORT=${IMAP_PORT:-1143}
IMAPS_PORT=${IMAPS_PORT:-1993}
POP3_PORT=${POP3_PORT:-1110}
POP3S_PORT=${POP3S_PORT:-1995}
SIEVE_PORT=${SIEVE_PORT:-14190}
SUBMIT_PORT=${SUBMIT_PORT:-1587}
SUBMITS_PORT=${SUBMITS_PORT:-1465}
SMARTHOST=${SMARTHOST:-}

DOMAIN=example.test
DEMO_USER=demo@$DOMAIN
MX_HOSTNAME=mx.$DOMAIN
KEY_ID=dev1

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
	cat >&2 <<'EOF'
usage: deploy/stack.sh init [RUN_DIR]
       deploy/stack.sh run  [RUN_DIR]
       deploy/stack.sh stop [RUN_DIR]
EOF
	exit 2
}

# The run directory as an absolute path (sockets and configs need one).
set_run() {
	r=${1:-${RUN_DIR:-./run}}
	mkdir -p "$r"
	RUN=$(cd "$r" && pwd)
	case "$RUN" in
	*[!A-Za-z0-9_./+-]*)
		die "run directory path has unusual characters: $RUN" ;;
	esac
	# Unix socket paths are limited to 107 bytes.
	if [ ${#RUN} -gt 80 ]; then
		die "run directory path too long for unix sockets: $RUN"
	fi
}

# ---------------------------------------------------------------- init

init_tls() {
	d=$RUN/tls
	mkdir -p "$d"
	chmod 700 "$d"
	if [ ! -s "$d/ca.pem" ] || [ ! -s "$d/ca.key" ]; then
		say "tls: new CA"
		rm -f "$d/server.pem" "$d/server.key"
		openssl req -x509 -new -newkey ec \
		    -pkeyopt ec_paramgen_curve:P-256 -nodes \
		    -keyout "$d/ca.key" -out "$d/ca.pem" -days 825 \
		    -subj "/O=edgemail dev/CN=edgemail dev CA" \
		    -addext "basicConstraints=critical,CA:TRUE" \
		    -addext "keyUsage=critical,keyCertSign,cRLSign" \
		    2>/dev/null || die "openssl: cannot make the CA"
		chmod 600 "$d/ca.key"
	fi
	if [ ! -s "$d/server.pem" ] || [ ! -s "$d/server.key" ]; then
		say "tls: new server certificate"
		ext=$d/server.ext
		cat >"$ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:$MX_HOSTNAME
EOF
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$d/server.key" -out "$d/server.csr" \
		    -subj "/O=edgemail dev/CN=127.0.0.1" 2>/dev/null \
		    || die "openssl: cannot make the server key"
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
		    -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		    -days 825 -sha256 -extfile "$ext" -out "$d/server.pem" \
		    2>/dev/null || die "openssl: cannot sign the server certificate"
		rm -f "$d/server.csr" "$ext"
		chmod 600 "$d/server.key"
	fi
}

init_keys() {
	mkdir -p "$RUN/keys"
	chmod 700 "$RUN/keys"
	if [ ! -s "$RUN/keys/hmac.keys" ]; then
		say "keys: new signing key $KEY_ID"
		(umask 077 && printf '%s %s\n' "$KEY_ID" \
		    "$(openssl rand -hex 32)" >"$RUN/keys/hmac.keys")
	fi
	chmod 600 "$RUN/keys/hmac.keys"
}

init_directory() {
	mkdir -p "$RUN/directory" "$RUN/mail"
	users=$RUN/directory/users
	[ -e "$users" ] || (umask 077 && : >"$users")
	if [ ! -s "$RUN/demo.password" ]; then
		(umask 077 && openssl rand -hex 12 >"$RUN/demo.password")
	fi
	chmod 600 "$RUN/demo.password"
	# The domain, the demo mailbox and the domain's admin aliases
	# (DESIGN section 7), made once by edgemailctl like any other.
	if ! grep -q "^$DOMAIN\( \|\$\)" "$RUN/directory/domains" 2>/dev/null
	then
		ctl domain add "$DOMAIN" >/dev/null 2>&1 ||
		    die "edgemailctl domain add $DOMAIN failed"
	fi
	if ! grep -q "^$DEMO_USER:" "$users"; then
		say "directory: mailbox $DEMO_USER"
		ctl user add "$DEMO_USER" --password-stdin \
		    <"$RUN/demo.password" >/dev/null ||
		    die "edgemailctl user add $DEMO_USER failed"
	fi
	# The admin aliases of DESIGN section 7, all to the demo mailbox.
	if ! grep -q "^postmaster@$DOMAIN " "$RUN/directory/aliases" 2>/dev/null
	then
		ctl domain admin "$DOMAIN" "$DEMO_USER" >/dev/null ||
		    die "edgemailctl domain admin $DOMAIN failed"
	fi
	# The domain's DKIM key, so the relay signs the demo's mail.
	if ! ls "$RUN/keys/dkim/$DOMAIN/"*.key >/dev/null 2>&1; then
		say "dkim: new key for $DOMAIN"
		ctl dkim keygen "$DOMAIN" >/dev/null ||
		    die "edgemailctl dkim keygen $DOMAIN failed"
	fi
}

# edgemailctl on the run directory's configuration.
ctl() {
	"$BIN/edgemailctl" -c "$RUN/edgemail.conf" "$@"
}

write_dovecot_conf() {
	mkdir -p "$RUN/dovecot/state"
	# The same generator as in production, from edgemail.conf; it also
	# installs and compiles the global Sieve script (state_dir/sieve).
	ctl dovecot-config --output "$RUN/dovecot/dovecot.conf" ||
	    die "edgemailctl dovecot-config failed"
}

# MAIL_UID/MAIL_GID: who owns the mailboxes; LOGIN_USER: who runs the
# login processes.  The stack's own user, or, for root (whom Dovecot
# refuses both), MAIL_USER (default nobody).
set_mail_owner() {
	if [ "$(id -u)" != 0 ]; then
		MAIL_UID=$(id -u)
		MAIL_GID=$(id -g)
		LOGIN_USER=$(id -un)
		return
	fi
	mu=${MAIL_USER:-nobody}
	LOGIN_USER=$mu
	MAIL_UID=$(id -u "$mu") || die "no user $mu for the mailboxes (MAIL_USER)"
	MAIL_GID=$(id -g "$mu")
	[ "$MAIL_UID" != 0 ] || die "MAIL_USER must not be root"
	# The mail user must reach RUN/mail: the run directory itself holds
	# nothing secret (keys/ and tls/ are 0700 of their own).
	chmod 755 "$RUN"
	chmod 755 "$RUN/sieve"
	chown "$MAIL_UID:$MAIL_GID" "$RUN/mail"
	if command -v setpriv >/dev/null &&
	    ! setpriv --reuid="$MAIL_UID" --regid="$MAIL_GID" --clear-groups \
	    test -w "$RUN/mail" -a -x "$RUN/mail" 2>/dev/null; then
		die "user $mu (uid $MAIL_UID) cannot write $RUN/mail: a parent directory is closed to it"
	fi
}

write_edgemail_conf() {
	tmp=$RUN/edgemail.conf.tmp
	{
		echo "# edgemail.conf of the dev stack, written by deploy/stack.sh init"
		echo "# (rewritten on every init: override with -o key=value)."
		echo "state_dir = $RUN"
		echo "hostname = $MX_HOSTNAME"
		echo "api_listen = 127.0.0.1:$API_PORT"
		echo "lmtp_server = unix:$RUN/dovecot/lmtp"
		echo "hmac_keys_file = $RUN/keys/hmac.keys"
		echo "tls_cert_file = $RUN/tls/server.pem"
		echo "tls_key_file = $RUN/tls/server.key"
		echo "submit_listen = 127.0.0.1:$SUBMIT_PORT"
		echo "submit_tls_listen = 127.0.0.1:$SUBMITS_PORT"
		echo "clamav_db_dir = $RUN/clamav"
		# Dovecot (edgemailctl dovecot-config): loopback, the ports
		# above, every process as the user running the stack (see
		# set_mail_owner), no login penalty (tests try wrong passwords).
		echo "dovecot_listen = 127.0.0.1"
		echo "imap_port = $IMAP_PORT"
		echo "imaps_port = $IMAPS_PORT"
		echo "pop3_port = $POP3_PORT"
		echo "pop3s_port = $POP3S_PORT"
		echo "managesieve_port = $SIEVE_PORT"
		echo "dovecot_user = $(id -un)"
		echo "dovecot_group = $(id -gn)"
		echo "dovecot_login_user = $LOGIN_USER"
		echo "mail_owner = $MAIL_UID:$MAIL_GID"
		echo "dovecot_login_penalty = no"
		# SHA512-CRYPT costs a few ms a login: the tests log in often.
		# Production keeps the default (BLF-CRYPT, cost 8: ~50 ms).
		echo "password_scheme = SHA512-CRYPT"
		echo "password_cost = 0"
		# No network: DKIM keys and DMARC policies come from the
		# resolver named by DNS_SERVER (ip:port), or nowhere ("none":
		# every lookup finds nothing, never a DNS failure).
		echo "dns_server = ${DNS_SERVER:-none}"
		if [ -n "$SMARTHOST" ]; then
			h=${SMARTHOST%:*}
			p=${SMARTHOST##*:}
			[ "$h" != "$SMARTHOST" ] || p=25
			case "$h" in \[*) ;; *) h="[$h]" ;; esac
			echo "relayhost = $h:$p"
		fi
	} >"$tmp"
	mv "$tmp" "$RUN/edgemail.conf"
}

# No signature database ships offline: the dev stack's scanner knows the
# EICAR test file only (md5:size:name, a ClamAV .hdb line).
init_clamav() {
	mkdir -p "$RUN/clamav"
	[ -s "$RUN/clamav/edgemail-dev.hdb" ] ||
	    echo "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature" \
	    >"$RUN/clamav/edgemail-dev.hdb"
	# The same string anywhere in a file (a text body), as .ndb hex.
	[ -s "$RUN/clamav/edgemail-dev.ndb" ] ||
	    echo "Eicar-Test-Signature.Body:0:*:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a" \
	    >"$RUN/clamav/edgemail-dev.ndb"
}

do_init() {
	command -v openssl >/dev/null || die "openssl not found (make deps)"
	command -v dovecot >/dev/null || die "dovecot not found (make deps)"
	[ -x "$BIN/edgemailctl" ] || die "$BIN/edgemailctl not built: make all"
	mkdir -p "$RUN/pids" "$RUN/log" "$RUN/mail" "$RUN/sieve"
	init_tls
	init_keys
	set_mail_owner
	write_edgemail_conf
	init_directory
	init_clamav
	write_dovecot_conf
}

# ---------------------------------------------------------- processes

# Whether the PID in a file is alive (and not a zombie).
pid_alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" \
	    2>/dev/null || true)
	[ "$st" != Z ]
}

read_pid() { [ -s "$1" ] && sed -n '1{s/[^0-9]//g;p;}' "$1" || true; }

# Stop one recorded process: TERM, wait up to 10 s, then KILL.
stop_pidfile() {
	f=$1
	name=$(basename "$f" .pid)
	pid=$(read_pid "$f")
	if [ -n "$pid" ] && pid_alive "$pid"; then
		# A process group leader (Dovecot) is stopped with its group:
		# signalled alone, the master waits for its children a second
		# or more, up to 5 s when one of them is still starting.
		pgrp=$(sed 's/^.*) [A-Za-z] [0-9]* \([0-9]*\).*/\1/' \
		    "/proc/$pid/stat" 2>/dev/null || true)
		if [ "$pgrp" = "$pid" ]; then
			kill -TERM "-$pid" 2>/dev/null || true
		else
			kill -TERM "$pid" 2>/dev/null || true
		fi
		i=0
		while pid_alive "$pid" && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if pid_alive "$pid"; then
			say "$name (pid $pid) did not stop: KILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped $name (pid $pid)"
	fi
	rm -f "$f"
}

do_stop() {
	[ -d "$RUN/pids" ] || return 0
	# The programs first, Dovecot (their delivery target) last.
	for f in "$RUN"/pids/*.pid; do
		[ -e "$f" ] || continue
		[ "$(basename "$f")" = dovecot.pid ] && continue
		stop_pidfile "$f"
	done
	[ -e "$RUN/pids/dovecot.pid" ] && stop_pidfile "$RUN/pids/dovecot.pid"
	return 0
}

# Whether something listens on TCP port $1 of 127.0.0.1 or of every
# address (read from /proc/net/tcp: no connection is made).
port_in_use() {
	hex=$(printf '%04X' "$1")
	awk -v a="0100007F:$hex" -v b="00000000:$hex" \
	    '$4 == "0A" && ($2 == a || $2 == b) { f = 1 } END { exit !f }' \
	    /proc/net/tcp 2>/dev/null
}

check_ports() {
	busy=
	for v in "$@"; do
		eval "p=\$$v"
		if port_in_use "$p"; then
			say "127.0.0.1:$p is in use ($v)"
			busy=1
		fi
	done
	[ -z "$busy" ] || die "ports in use: another stack runs? (deploy/stack.sh stop, or set other ports)"
}

start_dovecot() {
	pidf=$RUN/pids/dovecot.pid
	old=$(read_pid "$pidf")
	if [ -n "$old" ] && pid_alive "$old"; then
		die "Dovecot already runs for $RUN (pid $old): deploy/stack.sh stop first"
	fi
	rm -f "$RUN/dovecot/base/master.pid" "$RUN/dovecot/lmtp"
	# In the foreground, as this shell's child (its PID is $!, reaped
	# here), leading a process group of its own so that the master and
	# its children are stopped together (see stop_pidfile).
	setsid dovecot -F -c "$RUN/dovecot/dovecot.conf" </dev/null \
	    >>"$RUN/dovecot/dovecot.log" 2>&1 &
	pid=$!
	echo "$pid" >"$pidf"
	i=0
	while [ ! -S "$RUN/dovecot/lmtp" ] && [ $i -lt 200 ]; do
		pid_alive "$pid" || break
		sleep 0.05
		i=$((i + 1))
	done
	if ! pid_alive "$pid" || [ ! -S "$RUN/dovecot/lmtp" ]; then
		tail -n 10 "$RUN/dovecot/dovecot.log" >&2 || true
		rm -f "$pidf"
		die "dovecot did not start; see $RUN/dovecot/dovecot.log"
	fi
	say "dovecot running (pid $pid), log $RUN/dovecot/dovecot.log"
}

# start_prog NAME BINARY [OPTION...]: background, stderr to
# RUN/log/NAME.log.
start_prog() {
	name=$1
	prog=$2
	shift 2
	"$prog" -c "$RUN/edgemail.conf" "$@" >>"$RUN/log/$name.log" 2>&1 &
	pid=$!
	echo "$pid" >"$RUN/pids/$name.pid"
	say "$name running (pid $pid), log $RUN/log/$name.log"
}

wait_healthz() {
	i=0
	while [ $i -lt 100 ]; do
		if curl -fsS -o /dev/null --max-time 1 --cacert "$RUN/tls/ca.pem" \
		    "https://127.0.0.1:$API_PORT/healthz" 2>/dev/null; then
			return 0
		fi
		pid_alive "$(read_pid "$RUN/pids/api.pid")" || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# A path to print: relative to the current directory when inside it.
show() {
	case "$1" in
	"$PWD"/*) printf '%s' "${1#"$PWD"/}" ;;
	*) printf '%s' "$1" ;;
	esac
}

print_usage_block() {
	r=$(show "$RUN")
	pw=$(cat "$RUN/demo.password")
	cat <<EOF

==================================================================
 edgemail dev stack is up  (everything under $r/, 127.0.0.1 only)

 API        https://127.0.0.1:$API_PORT   (CA: $r/tls/ca.pem)
EOF
	if [ -n "${SUBMIT_STARTED:-}" ]; then
		cat <<EOF
 Submission 127.0.0.1:$SUBMIT_PORT (STARTTLS), 127.0.0.1:$SUBMITS_PORT (TLS)
EOF
	fi
	cat <<EOF
 IMAP       127.0.0.1:$IMAP_PORT (STARTTLS), 127.0.0.1:$IMAPS_PORT (TLS)
 POP3       127.0.0.1:$POP3_PORT (STARTTLS), 127.0.0.1:$POP3S_PORT (TLS)
 ManageSieve 127.0.0.1:$SIEVE_PORT
 LMTP       unix:$r/dovecot/lmtp
EOF
	if [ -n "${scan_opt:-}" ]; then
		cat <<EOF
 Scanner    unix:$r/scand.sock  (edgemail-scand: one engine for API + relay)
EOF
	fi
	cat <<EOF

 Mailbox    $DEMO_USER   password: $pw  ($r/demo.password)
 Signing key $r/keys/hmac.keys  (key id $KEY_ID)
 Logs       $r/log/  and  $r/dovecot/dovecot.log

 Deliver a message through the API (shortcut: deploy/post-message.sh FILE RCPT):

  printf 'From: <a@sender.test>\r\nTo: <$DEMO_USER>\r\nSubject: hello\r\nMessage-ID: <hello@sender.test>\r\n\r\nhello, world\r\n' >/tmp/hello.eml
  read KID SECRET <$r/keys/hmac.keys
  T='/v1/messages?mail_from=a%40sender.test&rcpt=demo%40example.test'
  TS=\$(date +%s); H=\$(openssl dgst -sha256 -r /tmp/hello.eml | cut -d' ' -f1)
  SIG=\$(printf 'v1\n%s\nPOST\n%s\n\n%s' "\$TS" "\$T" "\$H" | openssl dgst -sha256 -hmac "\$SECRET" -r | cut -d' ' -f1)
  curl -sS --cacert $r/tls/ca.pem -H 'Content-Type: message/rfc822' -H "Edgemail-Key-Id: \$KID" -H "Edgemail-Timestamp: \$TS" -H "Edgemail-Signature: v1=\$SIG" --data-binary @/tmp/hello.eml "https://127.0.0.1:$API_PORT\$T"; echo

 Read it back over IMAP:

  curl -sS --cacert $r/tls/ca.pem -u "$DEMO_USER:\$(cat $r/demo.password)" 'imaps://127.0.0.1:$IMAPS_PORT/INBOX;UID=1'

EOF
	if [ -n "${SUBMIT_STARTED:-}" ]; then
		cat <<EOF
 Send as the demo user through the relay (STARTTLS):

  swaks --server 127.0.0.1:$SUBMIT_PORT --tls --tls-verify --tls-ca-path $r/tls/ca.pem --auth PLAIN --auth-user $DEMO_USER --auth-password "\$(cat $r/demo.password)" --from $DEMO_USER --to $DEMO_USER

EOF
	fi
	cat <<EOF
 Ctrl-C stops everything.
==================================================================
EOF
}

STOPPING=
on_signal() {
	[ -n "$STOPPING" ] && return
	STOPPING=1
	trap '' INT TERM HUP
	say "stopping"
	do_stop
	exit 0
}

do_run() {
	do_init
	[ -x "$BIN/edgemail-api" ] || die "$BIN/edgemail-api not built: make all"
	ports="API_PORT IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT SIEVE_PORT"
	[ -x "$BIN/edgemail-submit" ] && ports="$ports SUBMIT_PORT SUBMITS_PORT"
	# shellcheck disable=SC2086
	check_ports $ports
	rm -f "$RUN/pids/stopping"
	trap on_signal INT TERM HUP
	start_dovecot
	# One virus scanner for the API and the relay (one libclamav
	# engine in memory, not two): edgemail-scand on a unix socket.
	scan_opt=
	if [ -x "$BIN/edgemail-scand" ]; then
		rm -f "$RUN/scand.sock"
		start_prog scand "$BIN/edgemail-scand" \
		    -o "scan_socket=$RUN/scand.sock"
		i=0
		while [ ! -S "$RUN/scand.sock" ] && [ $i -lt 200 ]; do
			pid_alive "$(read_pid "$RUN/pids/scand.pid")" || break
			sleep 0.05
			i=$((i + 1))
		done
		if [ -S "$RUN/scand.sock" ]; then
			scan_opt="scan_socket=$RUN/scand.sock"
		else
			say "edgemail-scand did not start (see $RUN/log/scand.log);" \
			    "the API and the relay load the scanner themselves"
		fi
	fi
	start_prog api "$BIN/edgemail-api" ${scan_opt:+-o "$scan_opt"}
	if ! wait_healthz; then
		say "edgemail-api did not come up; last lines of $RUN/log/api.log:"
		tail -n 20 "$RUN/log/api.log" >&2 || true
		do_stop
		exit 1
	fi
	SUBMIT_STARTED=
	if [ -x "$BIN/edgemail-submit" ]; then
		start_prog submit "$BIN/edgemail-submit" \
		    ${scan_opt:+-o "$scan_opt"}
		SUBMIT_STARTED=1
		i=0
		while ! port_in_use "$SUBMIT_PORT" && [ $i -lt 100 ]; do
			pid_alive "$(read_pid "$RUN/pids/submit.pid")" || break
			sleep 0.05
			i=$((i + 1))
		done
		if ! port_in_use "$SUBMIT_PORT"; then
			say "edgemail-submit is not listening; last lines of $RUN/log/submit.log:"
			tail -n 20 "$RUN/log/submit.log" >&2 || true
			SUBMIT_STARTED=
		fi
	fi
	print_usage_block
	# Background children ignore SIGINT in a non-interactive shell, so
	# Ctrl-C reaches only this shell: the trap stops them by PID.
	api_pid=$(read_pid "$RUN/pids/api.pid")
	while pid_alive "$api_pid"; do
		wait "$api_pid" 2>/dev/null || true
	done
	trap '' INT TERM HUP
	if [ -e "$RUN/pids/stopping" ]; then
		# `deploy/stack.sh stop` from elsewhere: it stops the rest.
		say "stopped by deploy/stack.sh stop"
		exit 0
	fi
	say "edgemail-api exited; see $RUN/log/api.log"
	do_stop
	exit 1
}

# ---------------------------------------------------------------- main

[ $# -ge 1 ] || usage
cmd=$1
shift
[ $# -le 1 ] || usage
case "$cmd" in
init)	set_run "${1:-}"; do_init; say "initialised $RUN" ;;
run)	set_run "${1:-}"; do_run ;;
stop)	set_run "${1:-}"
	[ -d "$RUN/pids" ] && : >"$RUN/pids/stopping"
	do_stop
	rm -f "$RUN/pids/stopping" ;;
*)	usage ;;
esac
