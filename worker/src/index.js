/*
 * index.js - the edgemail Cloudflare Email Worker's entry point.
 *
 * Email Routing calls email(message, env, ctx) once per recipient; the
 * work is in deliver.js.  This module exports the handler object only:
 * the Workers runtime refuses other named exports of the main module.
 */

import { deliver_email } from "./deliver.js";

export default {
	async email(message, env, ctx) {
		await deliver_email(message, env, ctx);
	},
};
