# deploy/sieve/junk.sieve - global Sieve script run before every user's
# own script (sieve_before): messages marked as spam, by rspamd
# (X-Spam-Flag: YES) or by the API's policy (X-Edgemail-Junk: yes), are
# filed into the Junk folder instead of the inbox.
require ["fileinto", "mailbox"];

if anyof (header :is "X-Spam-Flag" "YES",
    header :is "X-Edgemail-Junk" "yes") {
	fileinto :create "Junk";
	stop;
}
