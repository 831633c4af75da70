/*
 * sign.js - edgemail request signature v1 (DESIGN.md section 4).
 *
 * The API authenticates a request by an HMAC-SHA256, keyed with the bytes of
 * the shared SECRET string, over
 *
 *   "v1\n" + timestamp + "\n" + METHOD + "\n" + path_and_query + "\n"
 *     + idempotency_key + "\n" + hex(sha256(body))
 *
 * sent as "Edgemail-Signature: v1=HEX" (lower-case hex).  The C side is in
 * auth/sig.c; tests/vectors/signature.json holds cases both must reproduce.
 * Everything here uses crypto.subtle, which the Workers runtime provides.
 */

const encoder = new TextEncoder();

/* Lower-case hex of an ArrayBuffer or a typed array. */
export function sig_hex(bytes) {
	const u8 = bytes instanceof Uint8Array ? bytes :
	    ArrayBuffer.isView(bytes) ?
	    new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) :
	    new Uint8Array(bytes);
	let out = "";
	for (let i = 0; i < u8.length; i++)
		out += u8[i].toString(16).padStart(2, "0");
	return out;
}

/* Hex SHA-256 of a string (UTF-8) or of bytes, without copying the bytes. */
export async function sig_sha256_hex(data) {
	const bytes = typeof data === "string" ? encoder.encode(data) : data;
	return sig_hex(await crypto.subtle.digest("SHA-256", bytes));
}

/* The canonical string that is signed. */
export function sig_canonical(timestamp, method, target, idem_key,
    body_sha256_hex) {
	return "v1\n" + String(timestamp) + "\n" + method + "\n" + target +
	    "\n" + (idem_key || "") + "\n" + body_sha256_hex;
}

/* "v1=" + hex HMAC-SHA256 of the canonical string under secret. */
export async function sig_sign(secret, canonical) {
	const key = await crypto.subtle.importKey("raw", encoder.encode(secret),
	    { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	const mac = await crypto.subtle.sign("HMAC", key,
	    encoder.encode(canonical));
	return "v1=" + sig_hex(mac);
}

/*
 * The authentication headers for one request.  body_sha256_hex is
 * computed by the caller over the exact bytes it sends; it goes along as
 * Edgemail-Content-SHA256, so the API can check the signature before it
 * reads the body (and start the delivery while the body arrives).
 */
export async function sig_headers(key_id, secret, timestamp, method, target,
    idem_key, body_sha256_hex) {
	const canonical = sig_canonical(timestamp, method, target, idem_key,
	    body_sha256_hex);
	return {
		"Edgemail-Key-Id": key_id,
		"Edgemail-Timestamp": String(timestamp),
		"Edgemail-Signature": await sig_sign(secret, canonical),
		"Edgemail-Content-SHA256": body_sha256_hex,
	};
}
