import { ConfigError } from '../errors/config-error.ts';
import { InvalidReferenceError, parseReference } from '../reference/reference.ts';
import type { RuleDestination, RuleSource } from './image-rule.ts';

/** One default with where it came from (`--registry` or `DEFAULT_REGISTRY`), for messages. */
export interface DefaultSetting {
  value: string;
  from: string;
}

/**
 * Where image-syncer sends a rule whose destination is empty (`"source": ""`): the default
 * registry and namespace, from `--registry` / `--namespace`, else from the `DEFAULT_REGISTRY` /
 * `DEFAULT_NAMESPACE` environment variables.
 */
export interface DefaultTarget {
  registry?: DefaultSetting;
  namespace?: DefaultSetting;
}

/**
 * image-syncer declared these flags with the environment variable as the flag's default
 * (`StringVar(&defaultRegistry, "registry", os.Getenv("DEFAULT_REGISTRY"), …)`), so a flag that is
 * given wins, even an empty one, and the variable counts only when the flag is absent. An empty
 * value means unset.
 */
export function resolveDefaultTarget(flags: { registry?: string | undefined; namespace?: string | undefined }, env: NodeJS.ProcessEnv = process.env): DefaultTarget {
  const pick = (flag: string | undefined, flagName: string, variable: string): DefaultSetting | undefined => {
    const [value, from] = flag !== undefined ? [flag, flagName] : [env[variable], variable];
    const trimmed = value?.trim();
    return trimmed ? { value: trimmed, from } : undefined;
  };
  const registry = pick(flags.registry, '--registry', 'DEFAULT_REGISTRY');
  const namespace = pick(flags.namespace, '--namespace', 'DEFAULT_NAMESPACE');
  return { ...(registry ? { registry } : {}), ...(namespace ? { namespace } : {}) };
}

/**
 * image-syncer's "repository name" of a source: what follows its registry and first namespace
 * component (`quay.io/coreos/kube-rbac-proxy` → `kube-rbac-proxy`, `reg.io/a/b/c` → `b/c`,
 * `nginx` = `docker.io/library/nginx` → `nginx`); a one-component path stays whole
 * (`quay.io/app` → `app`).
 */
export function repositoryName(repository: string): string {
  const slash = repository.indexOf('/');
  return slash === -1 ? repository : repository.slice(slash + 1);
}

/**
 * The destination of an empty one: `registry/namespace/<repository name>` with the source's tags
 * (or digest), as image-syncer's README and its 1.0–1.3 code do. With a registry but no namespace,
 * `registry/<source path>`, as image-syncer's later code did when it dropped the namespace (where
 * the older code refused); a namespace without a registry is an error, as it was there.
 */
export function defaultDestination(source: RuleSource, target: DefaultTarget, where: string): RuleDestination {
  const { registry, namespace } = target;
  if (!registry) {
    const partial = namespace ? ` (${namespace.from} is set, but a namespace needs a registry)` : '';
    throw new ConfigError(`${where}: the destination is empty, which means default-registry/default-namespace/<repository>, but no default registry is set${partial}: give --registry and --namespace, or set DEFAULT_REGISTRY and DEFAULT_NAMESPACE`);
  }
  const host = registry.value;
  // A host is told from a namespace as docker does: a dot, a port, or localhost.
  if (host.includes('/') || !(host === 'localhost' || host.includes('.') || host.includes(':'))) {
    throw new ConfigError(`${where}: the default registry ${JSON.stringify(host)} (from ${registry.from}) is not a registry host: write host[:port], e.g. registry.example.com or myregistry:5000`);
  }
  const repository = namespace ? `${namespace.value}/${repositoryName(source.repository)}` : source.repository;
  const text = `${host}/${repository}`;
  const from = namespace ? `${registry.from} and ${namespace.from}` : registry.from;
  try {
    const ref = parseReference(text, { defaultTag: false });
    if (ref.tag !== undefined || ref.digest !== undefined) throw new InvalidReferenceError(text, 'a default registry or namespace cannot carry a tag or digest');
    return { registry: ref.domain, repository: ref.path };
  } catch (error) {
    throw new ConfigError(`${where}: the default destination ${JSON.stringify(text)} (from ${from}) is not valid: ${error instanceof InvalidReferenceError ? error.message : String(error)}`);
  }
}
