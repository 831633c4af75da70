#!/bin/sh
# deploy/post-message.sh - sign a message file and POST it to the dev
# stack's API (DESIGN section 4), printing the JSON reply.
#
#   deploy/post-message.sh FILE RCPT [MAIL_FROM]
#
# RCPT may list several recipients separated by commas.  MAIL_FROM
# defaults to a@sender.test; give "" for the null sender.  Reads the key
# from RUN_DIR/keys/hmac.keys (first line), the API address from
# RUN_DIR/edgemail.conf and trusts RUN_DIR/tls/ca.pem; RUN_DIR defaults to
# ./run.  IDEMPOTENCY_KEY=... adds an Idempotency-Key header.
# The HTTP status goes to stderr; the exit status is 0 for 2xx, 1 otherwise.
set -eu

[ $# -ge 2 ] && [ $# -le 3 ] || {
	echo "usage: deploy/post-message.sh FILE RCPT[,RCPT...] [MAIL_FROM]" >&2
	exit 2
}
file=$1
rcpts=$2
if [ $# -ge 3 ]; then mail_from=$3; else mail_from=a@sender.test; fi
run=${RUN_DIR:-./run}
idem=${IDEMPOTENCY_KEY:-}

[ -r "$file" ] || { echo "post-message: cannot read $file" >&2; exit 2; }
[ -r "$run/keys/hmac.keys" ] || {
	echo "post-message: no $run/keys/hmac.keys (deploy/stack.sh init)" >&2
	exit 2
}

# Percent-encode a query value (addresses: the few characters that matter).
qenc() {
	printf '%s' "$1" | sed -e 's/%/%25/g' -e 's/+/%2B/g' -e 's/&/%26/g' \
	    -e 's/=/%3D/g' -e 's/ /%20/g' -e 's/@/%40/g' -e 's/#/%23/g'
}

key_id=
secret=
while read -r k s _; do
	case "$k" in ''|'#'*) continue ;; esac
	key_id=$k
	secret=$s
	break
done <"$run/keys/hmac.keys"
[ -n "$secret" ] || { echo "post-message: no key in hmac.keys" >&2; exit 2; }

listen=$(sed -n 's/^[[:space:]]*api_listen[[:space:]]*=[[:space:]]*//p' \
    "$run/edgemail.conf" 2>/dev/null | tail -n 1)
listen=${listen:-127.0.0.1:8443}
port=${listen##*:}

target="/v1/messages?mail_from=$(qenc "$mail_from")"
old_ifs=$IFS
IFS=,
for r in $rcpts; do
	target="$target&rcpt=$(qenc "$r")"
done
IFS=$old_ifs

ts=$(date +%s)
body_hash=$(openssl dgst -sha256 -r "$file" | cut -d' ' -f1)
sig=$(printf 'v1\n%s\nPOST\n%s\n%s\n%s' "$ts" "$target" "$idem" "$body_hash" |
    openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
set -- -sS --max-time 120 --cacert "$run/tls/ca.pem" -o "$out" \
    -w '%{http_code}' -H 'Content-Type: message/rfc822' \
    -H "Edgemail-Key-Id: $key_id" -H "Edgemail-Timestamp: $ts" \
    -H "Edgemail-Signature: v1=$sig"
[ -z "$idem" ] || set -- "$@" -H "Idempotency-Key: $idem"
code=$(curl "$@" --data-binary "@$file" "https://127.0.0.1:$port$target") || {
	echo "post-message: request failed" >&2
	exit 1
}
cat "$out"
echo
echo "HTTP $code" >&2
case "$code" in 2??) exit 0 ;; *) exit 1 ;; esac
