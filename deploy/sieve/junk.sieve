# deploy/sieve/junk.sieve - global Sieve script run before every user's
# own script (sieve_before).
#
# 1. Exactly-once delivery: edgemail adds X-Edgemail-Delivery-Id to every
#    message it delivers (derived from the request's Idempotency-Key, or
#    its request id).  A second delivery of the same id to the same mailbox
#    (a client retry after a lost answer, a queue retry after a crash
#    between LMTP and the journal) is discarded (RFC 7352).  The API
#    removes any such field that arrives from outside.
# 2. Messages marked as spam, by rspamd (X-Spam-Flag: YES) or by the API's
#    policy (X-Edgemail-Junk: yes), are filed into the Junk folder.
require ["duplicate", "fileinto", "mailbox"];

if header :matches "X-Edgemail-Delivery-Id" "?*" {
	if duplicate :header "X-Edgemail-Delivery-Id" :seconds 1209600 {
		discard;
		stop;
	}
}

if anyof (header :is "X-Spam-Flag" "YES",
    header :is "X-Edgemail-Junk" "yes") {
	fileinto :create "Junk";
	stop;
}
