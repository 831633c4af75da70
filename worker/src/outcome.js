/*
 * outcome.js - what an edgemail-api answer means for the sending MTA.
 *
 * DESIGN.md section 4, the "Worker does" column:
 *
 *   200 delivered, 202 queued          "done"
 *   400 409 413 415 422                "reject": setReject(reason), a bounce
 *   401 429 5xx, 3xx, anything else    "retry": throw, the sender retries
 *
 * A 2xx whose body is not the API's JSON (a captive page, a proxy's own
 * answer) is not proof that the message was stored: it is retried too.
 * The reject reason is SMTP-style text ("550 5.1.1 ..."), taken from the
 * API's JSON when it has one and made safe for an SMTP reply line.
 */

const PERMANENT = new Set([400, 409, 413, 415, 422]);

/* Code, enhanced status and text used when the API gives no usable text. */
const DEFAULTS = {
	400: ["554", "5.6.0", "message or envelope refused as malformed"],
	409: ["554", "5.6.0", "message conflicts with an earlier delivery " +
	    "of the same Message-ID"],
	413: ["552", "5.3.4", "message too big"],
	415: ["554", "5.6.1", "message type not accepted"],
	422: ["550", "5.1.1", "recipient rejected"],
};

const REASON_MAX = 400;
const SMTP_CODE = /^5\d\d$/;
const ENHANCED = /^5\.\d{1,3}\.\d{1,3}$/;

/* "done", "reject" or "retry". */
export function outcome_of(status, json) {
	if (status >= 200 && status < 300)
		return json !== null && typeof json === "object" &&
		    (json.status === "delivered" || json.status === "queued") ?
		    "done" : "retry";
	if (PERMANENT.has(status))
		return "reject";
	return "retry";
}

/* One printable line, no control characters, bounded length. */
function clean(text) {
	return String(text).replace(/[\x00-\x1f\x7f]+/g, " ")
	    .replace(/\s+/g, " ").trim().slice(0, REASON_MAX);
}

function str(v) {
	return typeof v === "string" || typeof v === "number" ? String(v) : "";
}

/*
 * "code enhanced text".  A code or enhanced status at the start of the text
 * wins, then the API's code/enhanced fields, then the defaults.  A 4xx
 * code from the API is not used: setReject is a permanent answer.
 */
function smtp_text(status, code, enhanced, text) {
	const d = DEFAULTS[status] || ["550", "5.0.0", "message refused"];
	let t = clean(text);
	let c = SMTP_CODE.test(str(code)) ? str(code) : d[0];
	let e = ENHANCED.test(str(enhanced)) ? str(enhanced) : d[1];
	/* Text that carries its own code or enhanced status keeps them. */
	let m = /^(\d\d\d)[ -]/.exec(t);
	if (m) {
		if (SMTP_CODE.test(m[1]))
			c = m[1];
		t = t.slice(m[0].length).trim();
	}
	m = /^(\d\.\d{1,3}\.\d{1,3})\s/.exec(t + " ");
	if (m) {
		if (ENHANCED.test(m[1]))
			e = m[1];
		t = t.slice(m[1].length).trim();
	}
	return c + " " + e + " " + (t !== "" ? t : d[2]);
}

/* The text for message.setReject() for a permanent answer. */
export function reject_reason(status, json) {
	const j = json !== null && typeof json === "object" ? json : {};
	if (status === 422 && Array.isArray(j.recipients)) {
		const r = j.recipients.find((x) => x && typeof x === "object" &&
		    x.status !== "delivered");
		if (r)
			return smtp_text(status, r.code, r.enhanced,
			    str(r.message));
	}
	const text = str(j.reason) || str(j.message);
	return smtp_text(status, j.code, j.enhanced, text);
}
