/*
 * dsn.c - delivery status notifications (RFC 3464, RFC 3462
 * multipart/report) for mail the relay could not deliver.
 *
 * One DSN per attempt that found failed recipients: a human part, the
 * machine-readable message/delivery-status part (one block per
 * recipient, with the remote server's reply as Diagnostic-Code), and the
 * original header section (text/rfc822-headers; never the body, so a
 * bounce cannot carry the payload on to someone else).  Reply texts from
 * remote servers are reduced to printable ASCII.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "smtp-out/submit.h"

static void
ascii(const char *in, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < outsz; in++)
		out[o++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
	out[o] = '\0';
}

static void
rfc5322_date(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

int
dsn_build(struct buf *out, const char *hostname, const char *queue_id,
    const char *orig_from, const struct dsn_rcpt *rcpts, size_t n,
    const char *hdr, size_t hdr_len, int64_t arrival)
{
	char date[64], adate[64], text[300], status[16];
	char id[SUBMIT_ID_LEN + 1];
	size_t i;
	int failed = 0;

	for (i = 0; i < n; i++)
		failed |= rcpts[i].failed;
	submit_new_id(id);
	rfc5322_date(time(NULL), date, sizeof(date));
	rfc5322_date(arrival, adate, sizeof(adate));
	buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <dsn.%s@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/dsn\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--%s/dsn\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Description: Notification\r\n"
	    "\r\n"
	    "This is the mail system at host %s.\r\n"
	    "\r\n"
	    "%s\r\n"
	    "\r\n",
	    hostname, orig_from, failed ? "Undelivered Mail Returned to Sender" :
	    "Delayed Mail (still being retried)", date, id, hostname, id, id,
	    hostname, failed ? "Your message could not be delivered to one or "
	    "more recipients.\r\nIt is attached below (header section only)." :
	    "Your message has not been delivered yet; it will be retried.");
	for (i = 0; i < n; i++) {
		ascii(rcpts[i].reply->text, text, sizeof(text));
		buf_printf(out, "<%s>: %d %s %s\r\n", rcpts[i].addr,
		    rcpts[i].reply->code, rcpts[i].reply->enhanced, text);
	}
	buf_printf(out, "\r\n--%s/dsn\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Edgemail-Queue-ID: %s\r\n"
	    "Arrival-Date: %s\r\n", id, hostname, queue_id, adate);
	for (i = 0; i < n; i++) {
		const struct reply *r = rcpts[i].reply;

		if (r->enhanced[0] != '\0')
			snprintf(status, sizeof(status), "%s", r->enhanced);
		else
			snprintf(status, sizeof(status), "%d.0.0",
			    r->code >= 500 ? 5 : 4);
		ascii(r->text, text, sizeof(text));
		buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n"
		    "Action: %s\r\n"
		    "Status: %s\r\n"
		    "Diagnostic-Code: smtp; %d %s %s\r\n", rcpts[i].addr,
		    rcpts[i].failed ? "failed" : "delayed", status, r->code,
		    r->enhanced, text);
	}
	buf_printf(out, "\r\n--%s/dsn\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "\r\n", id);
	if (hdr != NULL && hdr_len > 0)
		buf_append(out, hdr, hdr_len);
	return buf_printf(out, "\r\n--%s/dsn--\r\n", id);
}
