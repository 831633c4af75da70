# postfix.sh - part (f) of make bench against Postfix, where it is
# installed (sourced by run.sh; make bench never installs it).
#
# The reference of issue 8: the same submission load (the same client,
# STARTTLS, AUTH PLAIN against the same Dovecot, 10 KB, one far
# recipient) through a Postfix instance of its own on loopback, relaying
# to a null smarthost, once with OpenDKIM as a milter signing with the
# demo domain's key (when opendkim is installed too) and once without.
# Postfix runs from RUN/postfix (main.cf, master.cf, queue, data): no
# chroot, its log in RUN/log/postfix.log; nothing of the system's
# /etc/postfix is used.  Its smtpd runs as the postfix user, so the run
# directory becomes traversable (0711) and Dovecot's auth socket 0666 for
# this part: a temporary directory of the bench, on loopback.  The smarthost asks Postfix for no AUTH (that
# needs Cyrus SASL modules); edgemail-submit's does.  Postfix's
# "process tree" is the master and every process under it, plus
# opendkim when it signs: its peak RSS (each process's, summed as ps
# would) is the target's measure, its PSS at that moment is reported.

have_postfix() {
	[ -x /usr/sbin/postfix ] && [ -x /usr/lib/postfix/sbin/master ]
}

have_opendkim() {
	command -v opendkim >/dev/null 2>&1
}

postfix_conf() {	# milter ("" for none)
	pf=$RUN/postfix
	mkdir -p "$pf/queue" "$pf/data"
	chown postfix "$pf/data"
	cat >"$pf/main.cf" <<EOF
# main.cf of make bench's Postfix (tests/bench/postfix.sh)
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $RUN/log
maillog_file = $RUN/log/postfix.log
myhostname = postfix-bench.example.test
mydomain = example.test
myorigin = example.test
mydestination =
local_recipient_maps =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relayhost = [127.0.0.1]:$SH2_PORT
smtp_tls_security_level = encrypt
smtp_tls_CAfile = $RUN/tls/ca.pem
smtpd_tls_cert_file = $RUN/tls/server.pem
smtpd_tls_key_file = $RUN/tls/server.key
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $RUN/dovecot/auth-client
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_client_connection_count_limit = 0
smtpd_milters = $1
milter_default_action = tempfail
message_size_limit = 30000000
EOF
	cat >"$pf/master.cf" <<EOF
# master.cf of make bench's Postfix: no chroot
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

opendkim_start() {
	mkdir -p "$RUN/postfix"
	key=$(ls "$RUN/keys/dkim/$DOMAIN/"*.key | head -n 1)
	sel=$(basename "$key" .key)
	cat >"$RUN/postfix/opendkim.conf" <<EOF
Syslog no
Mode s
Domain $DOMAIN
Selector $sel
KeyFile $key
RequireSafeKeys no
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
OversignHeaders From
Socket local:$RUN/postfix/opendkim.sock
UMask 000
Background no
EOF
	opendkim -f -x "$RUN/postfix/opendkim.conf" </dev/null \
	    >"$RUN/log/opendkim.log" 2>&1 &
	DKIM_PID=$!
	wait_socket "$RUN/postfix/opendkim.sock" "$DKIM_PID" || {
		tail -n 20 "$RUN/log/opendkim.log" >&2
		die "opendkim did not start"
	}
}

postfix_start() {	# milter
	postfix_conf "$1"
	chmod 0711 "$RUN" "$RUN/dovecot"
	chmod 0666 "$RUN/dovecot/auth-client"
	postfix -c "$RUN/postfix" check >>"$RUN/log/postfix.log" 2>&1 || true
	postfix -c "$RUN/postfix" start >>"$RUN/log/postfix.log" 2>&1 ||
	    die "postfix did not start (log/postfix.log)"
	i=0
	while [ ! -s "$RUN/postfix/queue/pid/master.pid" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	PF_PID=$(tr -d ' \n' <"$RUN/postfix/queue/pid/master.pid" 2>/dev/null)
	wait_tcp "$PF_PORT" "$PF_PID" || {
		tail -n 20 "$RUN/log/postfix.log" >&2
		die "postfix did not listen on 127.0.0.1:$PF_PORT"
	}
}

# The master is not our child (postfix start made it): stop_pid waits for
# it to be gone all the same.
postfix_stop() {
	stop_pid "$PF_PID" postfix
	PF_PID=
}

# tree_mem PID...: "RSS PSS" (KiB) summed over each PID and everything
# under it.  RSS counts the shared pages (libraries) once per process, as
# ps adds them; PSS divides each page among the processes that map it.
tree_mem() {
	files=$(ps -e -o pid=,ppid= | awk -v roots=" $* " '
	    { par[$1] = $2 }
	    END {
		n = split(roots, r, " ")
		for (i = 1; i <= n; i++)
			keep[r[i]] = 1
		do {
			added = 0
			for (k in par)
				if (!(k in keep) && (par[k] in keep)) {
					keep[k] = 1
					added = 1
				}
		} while (added)
		for (k in keep)
			printf "/proc/%s/smaps_rollup\n", k
	    }')
	# cat, not awk, opens them: a process may be gone by now.
	# shellcheck disable=SC2086
	cat $files 2>/dev/null | awk '$1 == "Rss:" { r += $2 }
	    $1 == "Pss:" { p += $2 } END { printf "%d %d\n", r, p }'
}

# pf_cell PART CONC: one (f) cell on Postfix; the peak of its tree's RSS,
# sampled every 0.2 s, goes into the result.
pf_cell() {
	part=$1 conc=$2
	peakf=$RUN/samples/$part-rss
	echo "0 0" >"$peakf"
	(
		peak=0
		while :; do
			# shellcheck disable=SC2086
			m=$(tree_mem $PF_PID $DKIM_PID)
			# Replaced whole: the sampler is killed at any moment.
			[ "${m% *}" -gt "$peak" ] && peak=${m% *} &&
			    echo "$m" >"$peakf.new" && mv "$peakf.new" "$peakf"
			echo "$m" >>"$RUN/log/$part-$conc-tree.log"
			sleep 0.2
		done
	) &
	sampler=$!
	submit_slice "$part" 10k "$conc" "$PF_PORT"
	kill "$sampler" 2>/dev/null
	wait "$sampler" 2>/dev/null || true
	read -r rss pss <"$peakf"
	result "$part" 10k "$conc" "$rss pss_kb=$pss"
}

run_postfix_part() {
	have_postfix || {
		say "(f) Postfix is not installed: its references are the issue's figures"
		return 0
	}
	"$BIN/edgemail-bench" smarthost --listen "127.0.0.1:$SH2_PORT" \
	    --cert "$RUN/tls/server.pem" --key "$RUN/tls/server.key" \
	    </dev/null >"$RUN/log/smarthost2.log" 2>&1 &
	SH2_PID=$!
	wait_tcp "$SH2_PORT" "$SH2_PID" || die "the second smarthost did not start"
	if have_opendkim; then
		opendkim_start
		postfix_start "unix:$RUN/postfix/opendkim.sock"
		say "(f) Postfix master pid $PF_PID on 127.0.0.1:$PF_PORT, opendkim pid $DKIM_PID"
		for conc in 1 8 32; do
			pf_cell pfm "$conc"
		done
		postfix_stop
		stop_pid "$DKIM_PID" opendkim
		DKIM_PID=
	fi
	postfix_start ""
	say "(f) plain Postfix master pid $PF_PID on 127.0.0.1:$PF_PORT"
	for conc in 1 8 32; do
		pf_cell pfp "$conc"
	done
	postfix_stop
	stop_pid "$SH2_PID" smarthost
	SH2_PID=
}
