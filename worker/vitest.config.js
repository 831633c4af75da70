/*
 * vitest.config.js - run the tests inside workerd, the Workers runtime,
 * with the bindings of wrangler.toml (tests override env per case).
 */
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "./wrangler.toml" },
			miniflare: {
				bindings: { HMAC_SECRET: "test-secret" },
			},
		}),
	],
	test: {
		include: ["test/**/*.test.js"],
		testTimeout: 60000,
	},
});
