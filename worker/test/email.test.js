/*
 * email.test.js - the email() handler against a spied fetch: what is sent
 * (target, headers, signature, body, idempotency key) and what each answer
 * of edgemail-api turns into (done, setReject, or a thrown error so that
 * the sender retries).
 */
import { describe, it, expect, vi, beforeEach, afterEach } from "vitest";
import worker from "../src/index.js";
import * as entry from "../src/index.js";
import { TOO_BIG } from "../src/deliver.js";

const API = "https://api.mail.test";
const SECRET = "k1-0123456789abcdef0123456789abcdef";
const ENV = {
	API_URL: API,
	KEY_ID: "cf1",
	HMAC_SECRET: SECRET,
	TIMEOUT_MS: "30000",
	MAX_BYTES: "26214400",
};
const enc = new TextEncoder();

const MSG = "From: Alice <alice@sender.test>\r\n" +
    "To: <demo@example.test>\r\n" +
    "Subject: hello\r\n" +
    "Message-ID: <1@sender.test>\r\n" +
    "\r\n" +
    "hello\r\n";

/* A stream handing out bytes in chunks, counting how much was pulled. */
function chunked_stream(bytes, chunk = 4096) {
	let off = 0;
	const stats = { pulled: 0 };
	const stream = new ReadableStream({
		pull(ctrl) {
			if (off >= bytes.length) {
				ctrl.close();
				return;
			}
			const n = Math.min(chunk, bytes.length - off);
			ctrl.enqueue(bytes.slice(off, off + n));
			off += n;
			stats.pulled += n;
		},
	}, { highWaterMark: 0 });
	return { stream, stats };
}

/* A stand-in for ForwardableEmailMessage. */
function mock_message({ from = "alice@sender.test",
    to = "demo@example.test", raw = MSG, size, headers, stream } = {}) {
	const bytes = typeof raw === "string" ? enc.encode(raw) : raw;
	const s = stream || chunked_stream(bytes);
	const hdrs = new Headers();
	if (headers === undefined) {
		const m = /^Message-ID:\s*(.*)$/im.exec(
		    typeof raw === "string" ? raw : "");
		if (m)
			hdrs.set("Message-ID", m[1].trim());
	} else {
		for (const [k, v] of Object.entries(headers))
			hdrs.set(k, v);
	}
	return {
		from,
		to,
		headers: hdrs,
		raw: s.stream,
		rawSize: size === undefined ? bytes?.length : size,
		setReject: vi.fn(),
		forward: vi.fn(),
		stats: s.stats,
	};
}

function json_response(status, obj, extra = {}) {
	return new Response(JSON.stringify(obj), {
		status,
		headers: { "Content-Type": "application/json", ...extra },
	});
}

const DELIVERED = {
	status: "delivered", id: "r-1",
	recipients: [{ rcpt: "demo@example.test", status: "delivered",
	    code: 250, enhanced: "2.0.0", message: "ok" }],
};

let fetch_spy;
let log_spy;
let calls;

/* Spy fetch: answer(request_info) gives the Response (or throws). */
function api(answer) {
	calls = [];
	fetch_spy = vi.spyOn(globalThis, "fetch").mockImplementation(
	    async (url, init) => {
		const u = new URL(url);
		const body = init.body;
		calls.push({ url: String(url), target: u.pathname + u.search,
		    init, headers: new Headers(init.headers), body });
		return answer(calls[calls.length - 1]);
	});
}

/* The Worker's key for MSG (Message-ID <1@sender.test>) to demo@. */
async function mid_key() {
	return "cf:" + await hex_sha256(enc.encode(
	    "mid:<1@sender.test>\ndemo@example.test"));
}

/* The API answers a post under mid_key() 409 with this body, any other
 * 200 delivered; returns that key. */
async function conflict_on_mid_key(conflict) {
	const k_mid = await mid_key();
	api((c) => c.headers.get("Idempotency-Key") === k_mid ?
	    json_response(409, conflict) : json_response(200, DELIVERED));
	return k_mid;
}

async function hex_sha256(bytes) {
	const d = await crypto.subtle.digest("SHA-256", bytes);
	return [...new Uint8Array(d)].map((b) => b.toString(16)
	    .padStart(2, "0")).join("");
}

/* Independent check of the signature of one recorded request. */
async function expect_signed(call, secret = SECRET) {
	const h = call.headers;
	const canonical = ["v1", h.get("Edgemail-Timestamp"), "POST",
	    call.target, h.get("Idempotency-Key") || "",
	    await hex_sha256(call.body)].join("\n");
	const key = await crypto.subtle.importKey("raw", enc.encode(secret),
	    { name: "HMAC", hash: "SHA-256" }, false, ["verify", "sign"]);
	const mac = await crypto.subtle.sign("HMAC", key,
	    enc.encode(canonical));
	const hex = [...new Uint8Array(mac)].map((b) => b.toString(16)
	    .padStart(2, "0")).join("");
	expect(h.get("Edgemail-Signature")).toBe("v1=" + hex);
}

function log_lines() {
	return log_spy.mock.calls.map((c) => JSON.parse(c[0]));
}

beforeEach(() => {
	log_spy = vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => {
	vi.restoreAllMocks();
});

describe("entry", () => {
	it("main module exports the email handler only", () => {
		/* workerd refuses to start on any other named export */
		expect(Object.keys(entry)).toEqual(["default"]);
		expect(Object.keys(worker)).toEqual(["email"]);
		expect(typeof worker.email).toBe("function");
	});
});

describe("request", () => {
	it("signs and sends the raw message", async () => {
		api(() => json_response(200, DELIVERED));
		const msg = mock_message();
		const before = Math.floor(Date.now() / 1000);
		await worker.email(msg, ENV, {});
		expect(calls.length).toBe(1);
		const c = calls[0];
		expect(c.init.method).toBe("POST");
		expect(c.url).toBe(API + "/v1/messages?mail_from=" +
		    "alice%40sender.test&rcpt=demo%40example.test");
		expect(c.headers.get("Content-Type")).toBe("message/rfc822");
		expect(c.headers.get("Edgemail-Key-Id")).toBe("cf1");
		const ts = Number(c.headers.get("Edgemail-Timestamp"));
		expect(Math.abs(ts - before)).toBeLessThan(5);
		expect(new TextDecoder().decode(c.body)).toBe(MSG);
		expect(c.init.redirect).toBe("manual");
		expect(c.init.signal).toBeInstanceOf(AbortSignal);
		await expect_signed(c);
		expect(c.headers.get("CF-Access-Client-Id")).toBeNull();
		expect(c.headers.get("CF-Access-Client-Secret")).toBeNull();
		expect(msg.setReject).not.toHaveBeenCalled();
	});

	it("idempotency key from Message-ID and recipient", async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message(), ENV, {});
		/* a retry: the edge added another trace header on top */
		await worker.email(mock_message({ raw: "Received: by x\r\n" +
		    MSG }), ENV, {});
		await worker.email(mock_message({ to: "other@example.test" }),
		    ENV, {});
		const keys = calls.map((c) => c.headers.get("Idempotency-Key"));
		expect(keys[0]).toMatch(/^cf:[0-9a-f]{64}$/);
		expect(keys[0].length).toBeLessThanOrEqual(200);
		expect(keys[1]).toBe(keys[0]);
		expect(keys[2]).not.toBe(keys[0]);
		expect(keys[0]).toBe("cf:" + await hex_sha256(enc.encode(
		    "mid:<1@sender.test>\ndemo@example.test")));
		for (const c of calls)
			await expect_signed(c);
	});

	it("message without Message-ID keys on the body hash", async () => {
		api(() => json_response(202, { status: "queued", id: "q" }));
		const raw = "From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n";
		const m1 = mock_message({ raw });
		await worker.email(m1, ENV, {});
		await worker.email(mock_message({ raw }), ENV, {});
		await worker.email(mock_message({ raw: raw + "more\r\n" }), ENV,
		    {});
		await worker.email(mock_message({ raw, to: "x@example.test" }),
		    ENV, {});
		const keys = calls.map((c) => c.headers.get("Idempotency-Key"));
		expect(keys[0]).toMatch(/^cf:[0-9a-f]{64}$/);
		expect(keys[1]).toBe(keys[0]);
		expect(keys[2]).not.toBe(keys[0]);
		expect(keys[3]).not.toBe(keys[0]);
		const body_hash = await hex_sha256(enc.encode(raw));
		expect(keys[0]).toBe("cf:" + await hex_sha256(enc.encode(
		    "body:" + body_hash + "\ndemo@example.test")));
		expect(m1.setReject).not.toHaveBeenCalled();
		for (const c of calls)
			await expect_signed(c);
	});

	it("recipient with +tag and a non-ASCII display name", async () => {
		api(() => json_response(200, DELIVERED));
		const raw = "From: =?UTF-8?B?SsO8cmdlbg==?= <j@sender.test>\r\n" +
		    "To: \"Zoë Ångström\" <sales+tag@example.test>\r\n" +
		    "Subject: Grüße\r\nMessage-ID: <2@sender.test>\r\n\r\n" +
		    "こんにちは\r\n";
		const msg = mock_message({ raw, from: "jürgen@sender.test",
		    to: "sales+tag@example.test" });
		await worker.email(msg, ENV, {});
		const c = calls[0];
		expect(c.target).toBe("/v1/messages?mail_from=" +
		    "j%C3%BCrgen%40sender.test&rcpt=sales%2Btag%40example.test");
		expect(new Uint8Array(c.body)).toEqual(enc.encode(raw));
		await expect_signed(c);
		expect(new URL(c.url).searchParams.get("rcpt"))
		    .toBe("sales+tag@example.test");
		expect(msg.setReject).not.toHaveBeenCalled();
	});

	it("null sender is sent as an empty mail_from", async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message({ from: "<>" }), ENV, {});
		await worker.email(mock_message({ from: "" }), ENV, {});
		for (const c of calls) {
			expect(c.target).toBe("/v1/messages?mail_from=" +
			    "&rcpt=demo%40example.test");
			await expect_signed(c);
		}
	});

	it("an apostrophe is signed as it is sent (%27)", async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message({ from: "o'brien@sender.test",
		    to: "o'hara@example.test" }), ENV, {});
		expect(calls[0].target).toBe("/v1/messages?mail_from=" +
		    "o%27brien%40sender.test&rcpt=o%27hara%40example.test");
		await expect_signed(calls[0]);
	});

	it("a port in API_URL is kept; a path is a configuration error",
	    async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message(), { ...ENV,
		    API_URL: "https://h.test:8443/" }, {});
		expect(calls[0].url.startsWith(
		    "https://h.test:8443/v1/messages?")).toBe(true);
		await expect_signed(calls[0]);
		const msg = mock_message();
		await expect(worker.email(msg, { ...ENV,
		    API_URL: "https://h.test/v1/messages" }, {}))
		    .rejects.toThrow(/API_URL must be an origin/);
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(calls.length).toBe(1);
	});

	it("Cloudflare Access headers when configured", async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message(), { ...ENV,
		    CF_ACCESS_CLIENT_ID: "id.access",
		    CF_ACCESS_CLIENT_SECRET: "access-secret" }, {});
		expect(calls[0].headers.get("CF-Access-Client-Id"))
		    .toBe("id.access");
		expect(calls[0].headers.get("CF-Access-Client-Secret"))
		    .toBe("access-secret");
		await expect_signed(calls[0]);
	});

	it("logs one JSON line without secrets or body", async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message(), { ...ENV,
		    CF_ACCESS_CLIENT_ID: "id.access",
		    CF_ACCESS_CLIENT_SECRET: "access-secret" }, {});
		expect(log_spy).toHaveBeenCalledTimes(1);
		const raw_line = log_spy.mock.calls[0][0];
		const line = JSON.parse(raw_line);
		expect(line.rcpt).toBe("demo@example.test");
		expect(line.size).toBe(enc.encode(MSG).length);
		expect(line.status).toBe(200);
		expect(line.outcome).toBe("delivered");
		expect(typeof line.ms).toBe("number");
		expect(line.id).toBe("r-1");
		for (const bad of [SECRET, "access-secret", "hello",
		    "Edgemail-Signature"])
			expect(raw_line).not.toContain(bad);
	});

	it("missing configuration is a temporary failure", async () => {
		api(() => json_response(200, DELIVERED));
		const msg = mock_message();
		await expect(worker.email(msg, { ...ENV, HMAC_SECRET: "" }, {}))
		    .rejects.toThrow(/HMAC_SECRET/);
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(calls.length).toBe(0);
	});
});

describe("answers", () => {
	it("202 queued is done", async () => {
		api(() => json_response(202, { status: "queued", id: "q-1" }));
		const msg = mock_message();
		await worker.email(msg, ENV, {});
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(log_lines()[0].outcome).toBe("queued");
	});

	it("2xx that is not the API's JSON is retried", async () => {
		api(() => new Response("<html>login</html>", { status: 200,
		    headers: { "Content-Type": "text/html" } }));
		const msg = mock_message();
		await expect(worker.email(msg, ENV, {})).rejects.toThrow(/200/);
		expect(msg.setReject).not.toHaveBeenCalled();
	});

	const rejects = [
		[400, { status: "bad_request", id: "x",
		    reason: "rcpt is not a valid address" },
		    "554 5.6.0 rcpt is not a valid address"],
		[400, null, "554 5.6.0 message or envelope refused as malformed"],
		[413, { status: "too_large", id: "x", limit: 26214400,
		    reason: "552 5.3.4 message exceeds 26214400 bytes" },
		    "552 5.3.4 message exceeds 26214400 bytes"],
		[415, { status: "unsupported_media_type", id: "x" },
		    "554 5.6.1 message type not accepted"],
		[422, { status: "rejected", id: "x", recipients: [
		    { rcpt: "nobody@example.test", status: "rejected",
		      code: 550, enhanced: "5.1.1",
		      message: "<nobody@example.test>: user unknown" }] },
		    "550 5.1.1 <nobody@example.test>: user unknown"],
		[422, { status: "rejected", id: "x", code: 554,
		    enhanced: "5.7.1", reason: "virus found: Eicar-Signature" },
		    "554 5.7.1 virus found: Eicar-Signature"],
		[422, { status: "rejected", id: "x", recipients: [
		    { rcpt: "s@example.test", status: "rejected", code: 550,
		      enhanced: "5.2.1", message: "5.2.1 mailbox\r\ndisabled" }] },
		    "550 5.2.1 mailbox disabled"],
		[422, { status: "rejected", id: "x" },
		    "550 5.1.1 recipient rejected"],
	];
	for (const [status, body, want] of rejects) {
		it(`${status} ${body ? body.status : "no json"} is rejected: ` +
		    want, async () => {
			api(() => body ? json_response(status, body) :
			    new Response("bad", { status }));
			const msg = mock_message();
			await worker.email(msg, ENV, {});
			expect(msg.setReject).toHaveBeenCalledTimes(1);
			expect(msg.setReject).toHaveBeenCalledWith(want);
			const line = log_lines()[0];
			expect(line.status).toBe(status);
			expect(line.outcome).toBe("reject");
		});
	}

	it("409: another message had this Message-ID; sent again under the " +
	    "key of its content, not bounced", async () => {
		const k_mid = await conflict_on_mid_key({ status: "conflict",
		    id: "c-1", reason: "Idempotency-Key was used before" });
		const msg = mock_message();
		await worker.email(msg, ENV, {});
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(calls.length).toBe(2);
		const k0 = calls[0].headers.get("Idempotency-Key");
		const k1 = calls[1].headers.get("Idempotency-Key");
		expect(k0).toBe(k_mid);
		expect(k1).toBe("cf:" + await hex_sha256(enc.encode("content:" +
		    await hex_sha256(enc.encode(MSG)) +
		    "\nalice@sender.test\ndemo@example.test")));
		await expect_signed(calls[1]);
		const lines = log_lines();
		expect(lines[0].outcome).toBe("conflict");
		expect(lines[lines.length - 1].outcome).toBe("delivered");

		/* The sender's retry of it, through the edge again: the
		 * second post has the same key, so the API answers it as a
		 * retry instead of storing a second copy. */
		await worker.email(mock_message({ raw: "Received: by mx2\r\n" +
		    MSG }), ENV, {});
		expect(calls.length).toBe(4);
		expect(calls[3].headers.get("Idempotency-Key")).toBe(k1);

		/* The same content from another envelope sender (a second
		 * forwarder) is another delivery: another key. */
		await worker.email(mock_message({ from: "fwd@other.test" }), ENV,
		    {});
		expect(calls.length).toBe(6);
		expect(calls[5].headers.get("Idempotency-Key")).not.toBe(k1);
	});

	it("a 409 for the content key too: sent once more without a key, " +
	    "not bounced", async () => {
		api((c) => c.headers.get("Idempotency-Key") ?
		    json_response(409, { status: "conflict", id: "c-3" }) :
		    json_response(200, DELIVERED));
		const msg = mock_message();
		await worker.email(msg, ENV, {});
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(calls.length).toBe(3);
		expect(calls[2].headers.get("Idempotency-Key")).toBeNull();
		await expect_signed(calls[2]);
		expect(log_lines().pop().outcome).toBe("delivered");
	});

	it("the content key leaves out trace fields on top, and only those",
	    async () => {
		await conflict_on_mid_key({ status: "conflict", id: "c-4" });
		const variants = [
		    MSG,
		    "Received: by mx\r\nARC-Seal: i=1;\r\n\tb=x\r\n" + MSG,
		    "received : by mx\n" + MSG,
		    " Received: by mx\r\n" + MSG,
		    "X-Other: 1\r\n" + MSG,
		];
		for (const raw of variants)
			await worker.email(mock_message({ raw }), ENV, {});
		const second = calls.filter((c, i) => i % 2 === 1)
		    .map((c) => c.headers.get("Idempotency-Key"));
		expect(second.length).toBe(5);
		expect(second[1]).toBe(second[0]);
		expect(second[2]).toBe(second[0]);
		/* a line starting with a blank is no field of its own */
		expect(second[3]).not.toBe(second[0]);
		expect(second[4]).not.toBe(second[0]);
	});

	const retries = [
		[401, { status: "unauthorized", id: "x", reason: "bad sig" }],
		[429, { status: "rate_limited", id: "x" }],
		[500, null],
		[502, null],
		[503, { status: "unavailable", id: "x",
		    reason: "451 4.3.0 spool unavailable" }],
		[504, null],
		[302, null],
		[403, null],
		[404, null],
	];
	for (const [status, body] of retries) {
		it(`${status} is a temporary failure (throw)`, async () => {
			api(() => body ? json_response(status, body,
			    { "Retry-After": "60" }) :
			    new Response("", { status, headers: status === 302 ?
			    { Location: "https://login.example/" } : {} }));
			const msg = mock_message();
			await expect(worker.email(msg, ENV, {})).rejects
			    .toThrow(new RegExp(String(status)));
			expect(msg.setReject).not.toHaveBeenCalled();
			const line = log_lines()[0];
			expect(line.status).toBe(status);
			expect(line.outcome).toBe("retry");
		});
	}

	it("network error is a temporary failure", async () => {
		api(() => {
			throw new TypeError("Network connection lost.");
		});
		const msg = mock_message();
		await expect(worker.email(msg, ENV, {})).rejects
		    .toThrow(/network error/);
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(log_lines()[0].outcome).toBe("network_error");
	});

	it("timeout is a temporary failure", async () => {
		api((c) => new Promise((resolve, reject) => {
			c.init.signal.addEventListener("abort", () =>
			    reject(c.init.signal.reason));
		}));
		const msg = mock_message();
		const t0 = Date.now();
		await expect(worker.email(msg, { ...ENV, TIMEOUT_MS: "200" },
		    {})).rejects.toThrow(/timeout after 200 ms/);
		const took = Date.now() - t0;
		expect(took).toBeGreaterThanOrEqual(150);
		expect(took).toBeLessThan(5000);
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(log_lines()[0].outcome).toBe("timeout");
	});

	it("timeout while reading the answer is a temporary failure",
	    async () => {
		api((c) => new Response(new ReadableStream({
			start(ctrl) {
				ctrl.enqueue(enc.encode("{\"status\":"));
				c.init.signal.addEventListener("abort", () =>
				    ctrl.error(c.init.signal.reason));
			},
		}), { status: 200 }));
		const msg = mock_message();
		await expect(worker.email(msg, { ...ENV, TIMEOUT_MS: "200" },
		    {})).rejects.toThrow(/timeout/);
		expect(msg.setReject).not.toHaveBeenCalled();
	});

	it("default timeout is 30 s", async () => {
		api((c) => {
			c.init.signal.throwIfAborted();
			return json_response(200, DELIVERED);
		});
		const spy = vi.spyOn(AbortSignal, "timeout");
		await worker.email(mock_message(), { ...ENV, TIMEOUT_MS:
		    undefined }, {});
		/* What is left of one 30 s deadline for the whole delivery
		 * (reading the message took a moment). */
		expect(spy).toHaveBeenCalledTimes(1);
		const ms = spy.mock.calls[0][0];
		expect(ms).toBeLessThanOrEqual(30000);
		expect(ms).toBeGreaterThan(29000);
	});

	it("after a 409 the second post gets what is left of the deadline",
	    async () => {
		await conflict_on_mid_key({ status: "conflict", id: "c-2" });
		const spy = vi.spyOn(AbortSignal, "timeout");
		await worker.email(mock_message(), ENV, {});
		expect(spy).toHaveBeenCalledTimes(2);
		for (const [ms] of spy.mock.calls)
			expect(ms).toBeLessThanOrEqual(30000);
		expect(spy.mock.calls[1][0]).toBeLessThanOrEqual(
		    spy.mock.calls[0][0]);
	});
});

describe("size", () => {
	it("over-size mail is refused before it is read", async () => {
		api(() => json_response(200, DELIVERED));
		const msg = mock_message({ size: 26214401 });
		await worker.email(msg, ENV, {});
		expect(msg.setReject).toHaveBeenCalledWith(TOO_BIG);
		expect(TOO_BIG).toBe("552 5.3.4 message too big");
		expect(msg.stats.pulled).toBe(0);
		expect(msg.raw.locked).toBe(false);
		expect(calls.length).toBe(0);
		expect(log_lines()[0].outcome).toBe("reject");
	});

	it("MAX_BYTES from the environment", async () => {
		api(() => json_response(200, DELIVERED));
		const msg = mock_message({ raw: "x".repeat(2000) });
		await worker.email(msg, { ...ENV, MAX_BYTES: "1000" }, {});
		expect(msg.setReject).toHaveBeenCalledWith(TOO_BIG);
		expect(calls.length).toBe(0);
	});

	it("a stream longer than announced and over the limit is refused",
	    async () => {
		api(() => json_response(200, DELIVERED));
		const msg = mock_message({ raw: "x".repeat(3000), size: 10 });
		await worker.email(msg, { ...ENV, MAX_BYTES: "1000" }, {});
		expect(msg.setReject).toHaveBeenCalledWith(TOO_BIG);
		expect(calls.length).toBe(0);
	});

	it("a stream longer or shorter than announced is sent whole",
	    async () => {
		api(() => json_response(200, DELIVERED));
		await worker.email(mock_message({ size: 5 }), ENV, {});
		await worker.email(mock_message({ size: 100000 }), ENV, {});
		for (const c of calls) {
			expect(new TextDecoder().decode(c.body)).toBe(MSG);
			await expect_signed(c);
		}
	});

	it("20 MiB message: one copy, hashed and sent", async () => {
		const SIZE = 20 * 1024 * 1024;
		const HEAD = enc.encode("From: a@sender.test\r\n" +
		    "Message-ID: <big@sender.test>\r\n\r\n");
		/* Deterministic content made chunk by chunk, never whole. */
		function big_stream() {
			let off = 0;
			return new ReadableStream({
				pull(ctrl) {
					if (off >= SIZE) {
						ctrl.close();
						return;
					}
					const n = Math.min(65536, SIZE - off);
					const c = new Uint8Array(n);
					for (let i = 0; i < n; i++) {
						const p = off + i;
						c[i] = p < HEAD.length ?
						    HEAD[p] : (p % 78 === 77 ?
						    10 : 97 + p % 26);
					}
					ctrl.enqueue(c);
					off += n;
				},
			});
		}
		const digested = [];
		const real_digest = crypto.subtle.digest.bind(crypto.subtle);
		vi.spyOn(crypto.subtle, "digest").mockImplementation(
		    (alg, data) => {
			digested.push(data);
			return real_digest(alg, data);
		});
		let seen = null;
		api((c) => {
			seen = c.body;
			return json_response(200, DELIVERED);
		});
		const msg = mock_message({ raw: null, size: SIZE,
		    stream: { stream: big_stream(), stats: {} },
		    headers: { "Message-ID": "<big@sender.test>" } });
		await worker.email(msg, ENV, {});
		expect(msg.setReject).not.toHaveBeenCalled();
		expect(seen).not.toBeNull();
		expect(seen.byteLength).toBe(SIZE);
		/* one allocation of exactly the message's size ... */
		expect(seen.buffer.byteLength).toBe(SIZE);
		/* ... and it is the very object that was hashed */
		expect(digested.some((d) => d === seen)).toBe(true);
		vi.mocked(crypto.subtle.digest).mockRestore();

		/* the hash in the signature is that of the generated bytes */
		const ds = new crypto.DigestStream("SHA-256");
		await big_stream().pipeTo(ds);
		const want = [...new Uint8Array(await ds.digest)].map((b) =>
		    b.toString(16).padStart(2, "0")).join("");
		const c = calls[0];
		const canonical = ["v1", c.headers.get("Edgemail-Timestamp"),
		    "POST", c.target, c.headers.get("Idempotency-Key"),
		    want].join("\n");
		const key = await crypto.subtle.importKey("raw",
		    enc.encode(SECRET), { name: "HMAC", hash: "SHA-256" }, false,
		    ["sign"]);
		const mac = [...new Uint8Array(await crypto.subtle.sign("HMAC",
		    key, enc.encode(canonical)))].map((b) => b.toString(16)
		    .padStart(2, "0")).join("");
		expect(c.headers.get("Edgemail-Signature")).toBe("v1=" + mac);
		expect(log_lines()[0].size).toBe(SIZE);
	});
});
