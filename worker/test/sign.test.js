/*
 * sign.test.js - the request signature against the shared test vectors
 * (tests/vectors/signature.json, also checked by the C unit tests).
 */
import { describe, it, expect } from "vitest";
import vectors from "../../tests/vectors/signature.json";
import { sig_canonical, sig_sign, sig_sha256_hex, sig_headers, sig_hex }
    from "../src/sign.js";

function from_hex(hex) {
	const out = new Uint8Array(hex.length / 2);
	for (let i = 0; i < out.length; i++)
		out[i] = parseInt(hex.substr(i * 2, 2), 16);
	return out;
}

describe("signature vectors", () => {
	it("has cases", () => {
		expect(vectors.cases.length).toBeGreaterThan(0);
	});
	for (const v of vectors.cases) {
		it(`vector ${v.name}`, async () => {
			const body = from_hex(v.body_hex);
			const hash = await sig_sha256_hex(body);
			const canonical = sig_canonical(v.timestamp, v.method,
			    v.target, v.idempotency_key, hash);
			expect(canonical).toBe(v.canonical);
			expect(await sig_sign(v.secret, canonical))
			    .toBe(v.signature);
			const h = await sig_headers("k", v.secret, v.timestamp,
			    v.method, v.target, v.idempotency_key, hash);
			expect(h["Edgemail-Signature"]).toBe(v.signature);
			expect(h["Edgemail-Timestamp"]).toBe(v.timestamp);
			expect(h["Edgemail-Content-SHA256"]).toBe(hash);
		});
	}
	it("hex of typed-array views", () => {
		const buf = new Uint8Array([0, 1, 0xab, 0xff, 9]);
		expect(sig_hex(buf.subarray(1, 4))).toBe("01abff");
		expect(sig_hex(buf.buffer)).toBe("0001abff09");
	});
});
