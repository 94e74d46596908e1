/**
 * `node:http` and `node:https` without their ES module facades. `import … from 'node:http'` makes
 * Node build a facade that reads every export, and node:http's lazy `WebSocket`/`EventSource`
 * getters then load the bundled undici: 35–45 ms of every command's start-up on this machine,
 * for nothing skiff uses. `process.getBuiltinModule` returns the CommonJS module as it is.
 * Type-only imports of these modules stay as they are.
 */
export const http = process.getBuiltinModule('node:http');

/** node:https, loaded on first use (only TLS servers and https registries need it). */
export function https(): typeof import('node:https') {
  return process.getBuiltinModule('node:https');
}
