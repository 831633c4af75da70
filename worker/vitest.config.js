/*
 * vitest.config.js - run the tests inside workerd, the Workers runtime,
 * with src/index.js loaded as the Worker (so its exports are checked)
 * and the bindings of wrangler.toml (tests override env per case).
 */
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "./wrangler.toml" },
			main: "./src/index.js",
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
