import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { credentialSource } from '../client/credentials.ts';
import { MirroredClient, type PullSource } from '../client/mirrored-client.ts';
import { loadMirrorConfig, type Endpoint, type MirrorSet } from '../client/mirrors.ts';
import { RegistryClient } from '../client/registry-client.ts';
import { DEFAULT_RETRY } from '../client/retry.ts';
import { NodeHttpTransport } from '../client/transport.ts';
import { warningLine } from './error-line.ts';

export interface ClientSettings {
  /** PEM file of extra certificate authorities to trust (a private registry's CA). */
  caFile?: string;
  /** Hosts that speak plain HTTP although they are not loopback (docker's insecure-registries). */
  insecureRegistries?: string[];
  mirrors?: MirrorSet;
}

/** `--mirror-config`, else `$SKIFF_MIRROR_CONFIG`, else `$XDG_CONFIG_HOME` or `~/.config`'s `skiff/mirrors.yaml` when present. */
export async function loadClientMirrors(file: string | undefined): Promise<MirrorSet> {
  const chosen = file ?? process.env.SKIFF_MIRROR_CONFIG;
  if (chosen) return loadMirrorConfig(chosen);
  const fallback = join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'skiff', 'mirrors.yaml');
  return (await access(fallback).then(() => true, () => false)) ? loadMirrorConfig(fallback) : {};
}

/** A broken credential helper (e.g. Docker Desktop's, not installed here) warns and goes anonymous. */
function warnOnce(error: Error): void {
  if (warned.has(error.message)) return;
  warned.add(error.message);
  process.stderr.write(warningLine(`${error.message}; continuing without credentials`));
}
const warned = new Set<string>();

/**
 * The registry clients of one CLI run: one per host (and per mirror endpoint), sharing one
 * connection pool, with credentials from Docker's config and helpers.
 */
export function clientFactory(settings: ClientSettings = {}) {
  const caFile = settings.caFile ?? process.env.SKIFF_CA_FILE;
  // Node's bundled roots plus the given CA, so public registries keep working.
  const ca = caFile ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
  const transport = new NodeHttpTransport({ connections: 16, ...(ca ? { ca } : {}) });
  const clients = new Map<string, RegistryClient>();
  const insecure = new Set(settings.insecureRegistries ?? []);
  const mirrors = settings.mirrors ?? {};

  const get = (registry: string): RegistryClient => {
    let client = clients.get(registry);
    if (!client) {
      client = new RegistryClient({ registry, transport, credentials: credentialSource(registry, { onHelperError: warnOnce }), ...(insecure.has(registry) ? { plainHttp: true } : {}) });
      clients.set(registry, client);
    }
    return client;
  };

  const forEndpoint = (registry: string, endpoint: Endpoint): RegistryClient => {
    if (!endpoint.isMirror) return get(registry);
    const key = `${registry} via ${endpoint.baseUrl}`;
    let client = clients.get(key);
    if (!client) {
      // A mirror gets its own credentials, never the origin's, and fewer retries: the origin is next.
      client = new RegistryClient({ registry, endpoint: endpoint.baseUrl, transport, credentials: credentialSource(endpoint.host, { onHelperError: warnOnce }), retry: { ...DEFAULT_RETRY, attempts: 2 } });
      clients.set(key, client);
    }
    return client;
  };

  return {
    get,
    /** What pull reads from: the registry itself, or the registry behind its mirrors. */
    pullSource(registry: string): PullSource {
      if (!Object.hasOwn(mirrors, registry)) return get(registry);
      return new MirroredClient(registry, mirrors, (endpoint) => forEndpoint(registry, endpoint));
    },
    async close(): Promise<void> {
      await transport.close();
    },
  };
}

/** The help line of `--mirror-config`, saying what loadClientMirrors does. */
export const MIRROR_CONFIG_HELP = 'mirrors per registry (default $SKIFF_MIRROR_CONFIG, else $XDG_CONFIG_HOME/skiff/mirrors.yaml, else ~/.config/skiff/mirrors.yaml)';
