import { CredentialHelperError, helperGet, type HelperOptions } from './credential-helper.ts';
import { configKeyFor, helperFor, readDockerConfig, storedAuth, type DockerConfigOptions, type LoadedDockerConfig } from './docker-config.ts';
import type { Credentials } from './registry-client.ts';

/**
 * Credentials for a registry, found the way docker finds them:
 *
 *   1. `credHelpers[host]` → `docker-credential-<x> get`
 *   2. `credsStore`        → `docker-credential-<x> get`
 *   3. `auths[host]`       → `auth` (base64 user:pass) and/or `identitytoken`
 *
 * Unlike docker, a helper that answers "credentials not found" is not the end: a clear-text
 * `auths` entry for the same host is still used (docker would go anonymous while the file plainly
 * holds credentials). A helper that fails (missing program, crash, timeout) is an error unless
 * `onHelperError` is given, in which case it is reported there and the lookup carries on.
 */
export interface CredentialOptions extends DockerConfigOptions, HelperOptions {
  /** Already-read config (saves re-reading the file); otherwise it is read from configDir/$DOCKER_CONFIG/~/.docker. */
  config?: LoadedDockerConfig;
  /** Report a failed helper and continue as if it had found nothing. Without it, the failure is thrown. */
  onHelperError?: (error: CredentialHelperError) => void;
}

function helperOptions(options: CredentialOptions): HelperOptions {
  return {
    ...(options.env ? { env: options.env } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

export async function credentialsFor(registryHost: string, options: CredentialOptions = {}): Promise<Credentials | undefined> {
  const loaded = options.config ?? (await readDockerConfig(options));
  const helper = helperFor(loaded.data, registryHost);
  if (helper) {
    try {
      const found = await helperGet(helper.helper, configKeyFor(registryHost), helperOptions(options));
      if (found) return found;
    } catch (error) {
      if (!(error instanceof CredentialHelperError)) throw error;
      const explained = new CredentialHelperError(error.program, error.verb, `${error.detail} (configured by ${helper.via} in ${loaded.path})`, { cause: error });
      if (!options.onHelperError) throw explained;
      options.onHelperError(explained);
    }
  }
  const stored = storedAuth(loaded.data, registryHost, loaded.path);
  if (!stored) return undefined;
  const credentials: Credentials = {};
  if (stored.username) {
    credentials.username = stored.username;
    credentials.password = stored.password ?? '';
  }
  if (stored.identityToken) credentials.identityToken = stored.identityToken;
  return credentials.username || credentials.identityToken ? credentials : undefined;
}

/**
 * A `credentials` function for RegistryClient. The client asks before every request, so the
 * lookup (which may spawn a helper) runs once and its answer is kept; a failed lookup is not kept.
 *
 *   new RegistryClient({ registry, credentials: credentialSource(registry) })
 */
export function credentialSource(registryHost: string, options: CredentialOptions = {}): () => Promise<Credentials | undefined> {
  let pending: Promise<Credentials | undefined> | undefined;
  return () => {
    pending ??= credentialsFor(registryHost, options).catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
