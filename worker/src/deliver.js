/*
 * deliver.js - hand one incoming message to edgemail-api.
 *
 * Reads the raw message once into one buffer, hashes it, signs the request
 * (sign.js) and POSTs the same buffer to edgemail-api (POST /v1/messages,
 * DESIGN.md section 4).  The API's answer decides what the sending MTA
 * sees (outcome.js):
 *
 *   2xx                      done: the message is stored
 *   400 413 415 422          message.setReject(reason): a permanent bounce
 *   409                      another message had this Message-ID (a
 *                            list's copy): posted again under the key
 *                            of its content
 *   anything else, network
 *   errors and timeouts      throw: Cloudflare answers with a temporary
 *                            failure and the sender retries later
 *
 * setReject is never used for an outage.  One JSON log line per message.
 *
 * env: API_URL, KEY_ID, TIMEOUT_MS, MAX_BYTES ([vars] in wrangler.toml);
 * HMAC_SECRET, CF_ACCESS_CLIENT_ID, CF_ACCESS_CLIENT_SECRET (secrets).
 */

import { sig_headers, sig_sha256_hex } from "./sign.js";
import { outcome_of, reject_reason } from "./outcome.js";

export const DEFAULT_TIMEOUT_MS = 30000;
export const DEFAULT_MAX_BYTES = 25 * 1024 * 1024;
export const TOO_BIG = "552 5.3.4 message too big";
const IDEM_MAX = 200;

/* A positive integer from a [vars] string, or the default. */
function int_var(value, dflt) {
	const n = Number(value);
	return Number.isFinite(n) && n > 0 ? Math.floor(n) : dflt;
}

/*
 * Read the whole stream into one buffer of the announced size (grown only
 * if the stream is longer than announced, which it should not be).  Chunks
 * are copied in and dropped as they come, so the body exists once.  Returns
 * a Uint8Array view of exactly the bytes read, or null past max_bytes.
 */
export async function read_raw(stream, size_hint, max_bytes) {
	let buf = new Uint8Array(Math.min(Math.max(size_hint | 0, 0),
	    max_bytes));
	let len = 0;
	const reader = stream.getReader();
	try {
		for (;;) {
			const { done, value } = await reader.read();
			if (done)
				break;
			const chunk = value instanceof Uint8Array ? value :
			    new Uint8Array(value);
			if (len + chunk.length > max_bytes)
				return null;
			if (len + chunk.length > buf.length) {
				const grown = new Uint8Array(Math.min(max_bytes,
				    Math.max(len + chunk.length,
				    buf.length * 2, 65536)));
				grown.set(buf.subarray(0, len));
				buf = grown;
			}
			buf.set(chunk, len);
			len += chunk.length;
		}
	} finally {
		reader.releaseLock();
	}
	return len === buf.length ? buf : buf.subarray(0, len);
}

/*
 * Idempotency-Key for one delivery: the same message to the same recipient
 * gets the same key however often the sender retries.  "cf:" + hex SHA-256
 * of the Message-ID and the recipient, or of the body's hash and the
 * recipient when there is no Message-ID (the raw bytes, trace fields and
 * all: two identical messages without a Message-ID, an alert sent twice,
 * must not become one).  67 printable ASCII characters.
 */
export async function idempotency_key(message_id, rcpt, body_sha256_hex) {
	const id = (message_id || "").trim();
	const basis = id !== "" ? "mid:" + id + "\n" + rcpt :
	    "body:" + body_sha256_hex + "\n" + rcpt;
	return ("cf:" + await sig_sha256_hex(basis)).slice(0, IDEM_MAX);
}

/*
 * The key of the second post after a 409 (another message had that
 * Message-ID): the message below the trace fields every hop puts on top
 * (the API's list: Received, ARC-*, Authentication-Results...), the
 * envelope sender and the recipient.  The sender's retry comes through
 * the edge with new trace fields and is still the same message; the same
 * content from another envelope sender (two forwarders) is not, and the
 * API, which holds a key to its envelope too, would answer it 409.
 */
export async function content_key(raw, mail_from, rcpt) {
	const content = await sig_sha256_hex(raw.subarray(content_offset(raw)));
	return ("cf:" + await sig_sha256_hex("content:" + content + "\n" +
	    mail_from + "\n" + rcpt)).slice(0, IDEM_MAX);
}

const TRACE_FIELDS = new Set(["received", "received-spf",
    "authentication-results", "arc-seal", "arc-message-signature",
    "arc-authentication-results", "return-path", "delivered-to"]);

/* Where the message starts below the trace fields on top of it. */
export function content_offset(raw) {
	let pos = 0;
	for (;;) {
		/* The field's name: up to ':' on its first line. */
		let i = pos;
		while (i < raw.length && raw[i] !== 0x3a && raw[i] !== 0x0a)
			i++;
		if (i >= raw.length || raw[i] !== 0x3a || i - pos > 40)
			return pos;
		/* Blanks may come before the colon (obsolete syntax, as
		 * the API reads it), never before the name. */
		let k = i;
		while (k > pos && (raw[k - 1] === 0x20 || raw[k - 1] === 0x09))
			k--;
		const name = String.fromCharCode(...raw.subarray(pos, k))
		    .toLowerCase();
		if (!TRACE_FIELDS.has(name))
			return pos;
		/* Its end: the line end not followed by a continuation. */
		let end = i;
		for (;;) {
			while (end < raw.length && raw[end] !== 0x0a)
				end++;
			end++;
			if (end >= raw.length ||
			    (raw[end] !== 0x20 && raw[end] !== 0x09))
				break;
		}
		if (end >= raw.length)
			return pos;
		pos = end;
	}
}

/*
 * The request target (path and query) exactly as fetch sends it, which is
 * what is signed: made by the URL parser, which also writes "'" as %27
 * where encodeURIComponent leaves it (a signature over the one would not
 * verify for the other).  API_URL is an origin: the API serves
 * /v1/messages only, and a tunnel cannot strip a path.
 */
export function request_target(api_url, mail_from, rcpt) {
	const u = new URL(api_url);
	if (u.pathname !== "/" || u.search !== "" || u.hash !== "")
		throw new Error("edgemail worker: API_URL must be an origin " +
		    "(https://host[:port]), not " + api_url);
	u.pathname = "/v1/messages";
	u.search = "?mail_from=" + encodeURIComponent(mail_from) + "&rcpt=" +
	    encodeURIComponent(rcpt);
	return u.pathname + u.search;
}

/* The envelope sender as the API wants it: "" for the null reverse-path. */
function envelope_from(from) {
	const f = String(from || "").trim();
	return f === "<>" ? "" : f.replace(/^<(.*)>$/, "$1");
}

/*
 * setReject is synchronous at the edge; under `wrangler dev` the message
 * is an RPC stub whose setReject returns a promise that must settle
 * before the handler returns, or the rejection is lost.
 */
async function reject(message, reason) {
	await message.setReject(reason);
}

function log_line(fields) {
	console.log(JSON.stringify({ event: "email", ...fields }));
}

/* The response body, at most limit characters (the API's are small). */
async function body_text(res, limit) {
	const text = await res.text();
	return text.length > limit ? text.slice(0, limit) : text;
}

export async function deliver_email(message, env) {
	const started = Date.now();
	const rcpt = String(message.to || "");
	const max_bytes = int_var(env.MAX_BYTES, DEFAULT_MAX_BYTES);
	const timeout_ms = int_var(env.TIMEOUT_MS, DEFAULT_TIMEOUT_MS);
	const size = Number(message.rawSize) || 0;
	const log = (status, outcome, extra) => log_line({ rcpt, size, status,
	    outcome, ms: Date.now() - started, ...extra });

	if (size > max_bytes) {
		await reject(message, TOO_BIG);
		log(0, "reject", { reason: TOO_BIG });
		return;
	}
	if (!env.API_URL || !env.KEY_ID || !env.HMAC_SECRET) {
		/* A configuration mistake is fixed by the operator: retry. */
		const why = "API_URL, KEY_ID or HMAC_SECRET is not set";
		log(0, "error", { error: why });
		throw new Error("edgemail worker: " + why);
	}

	const body = await read_raw(message.raw, size, max_bytes);
	if (body === null) {
		await reject(message, TOO_BIG);
		log(0, "reject", { reason: TOO_BIG });
		return;
	}
	const body_hash = await sig_sha256_hex(body);
	const idem = await idempotency_key(message.headers?.get("Message-ID"),
	    rcpt, body_hash);
	const mail_from = envelope_from(message.from);
	let target;
	try {
		target = request_target(env.API_URL, mail_from, rcpt);
	} catch (err) {
		/* A configuration mistake is fixed by the operator: retry. */
		log(0, "error", { error: err.message });
		throw err;
	}
	const url = new URL(env.API_URL).origin + target;
	/* One deadline for the whole delivery, however many posts. */
	const deadline = started + timeout_ms;

	/* One signed POST; idem "" sends none.  Throws when unreachable. */
	async function post(idem) {
		const timestamp = Math.floor(Date.now() / 1000);
		const headers = {
			"Content-Type": "message/rfc822",
			...await sig_headers(env.KEY_ID, env.HMAC_SECRET, timestamp,
			    "POST", target, idem, body_hash),
		};
		if (idem !== "")
			headers["Idempotency-Key"] = idem;
		if (env.CF_ACCESS_CLIENT_ID && env.CF_ACCESS_CLIENT_SECRET) {
			headers["CF-Access-Client-Id"] = env.CF_ACCESS_CLIENT_ID;
			headers["CF-Access-Client-Secret"] =
			    env.CF_ACCESS_CLIENT_SECRET;
		}
		const signal = AbortSignal.timeout(Math.max(1,
		    deadline - Date.now()));
		try {
			/*
			 * redirect "manual": an Access login redirect must
			 * never be followed to a page that answers 200 for a
			 * message that was not stored.
			 */
			const res = await fetch(url, { method: "POST", headers,
			    body, redirect: "manual", signal });
			return { res, text: await body_text(res, 65536) };
		} catch (err) {
			const timed_out = signal.aborted ||
			    err?.name === "TimeoutError";
			const why = timed_out ? "timeout after " + timeout_ms +
			    " ms" : "network error: " + (err?.message ||
			    String(err));
			log(0, timed_out ? "timeout" : "network_error",
			    { error: why });
			throw new Error("edgemail-api unreachable (" + why +
			    "); try again later");
		}
	}

	let { res, text } = await post(idem);
	/*
	 * 409: this recipient got another message with the same Message-ID
	 * (a mailing list's copy of a message also sent to them directly).
	 * It is a different message, not a retry of this one: deliver it
	 * under the key of its content rather than bounce it to the list
	 * (a retry of it then has that key too).
	 */
	if (res.status === 409) {
		log(409, "conflict", { error: "another message had this " +
		    "Message-ID; sent again under the key of its content" });
		({ res, text } = await post(await content_key(body, mail_from,
		    rcpt)));
		/* Only where the API's idea of the content differs from
		 * ours (trace fields it does not skip): then as before,
		 * without a key, rather than bounce. */
		if (res.status === 409) {
			log(409, "conflict", { error: "the content key was " +
			    "used before too; sent again without a key" });
			({ res, text } = await post(""));
		}
	}

	let json = null;
	try {
		json = JSON.parse(text);
	} catch {
		json = null;
	}
	const id = json && typeof json.id === "string" ? json.id : undefined;
	const outcome = outcome_of(res.status, json);
	if (outcome === "done") {
		log(res.status, json.status, { id });
		return;
	}
	if (outcome === "reject") {
		const reason = reject_reason(res.status, json);
		await reject(message, reason);
		log(res.status, "reject", { id, reason });
		return;
	}
	const why = "edgemail-api answered " + res.status +
	    (json && typeof json.status === "string" ? " " + json.status : "");
	log(res.status, "retry", { id, error: why });
	throw new Error(why + "; try again later");
}
