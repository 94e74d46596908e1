/**
 * One manifest, by tag or digest: what it is, how to pull it, and what it is made of (an image's
 * layers, config and history; an index's platforms; the referrers that sign or describe it).
 */
import { useState } from 'preact/hooks';
import type { ConfigInfo, DeleteResult, LayerInfo, ManifestDetail } from '../../server/ui/api-types.ts';
import { namePath, request } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { ShortDigest } from '../components/digest.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';
import { Fact, Facts, OrDash } from '../components/facts.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { PullCommand } from '../components/pull-command.tsx';
import { ScrollBox } from '../components/scroll-box.tsx';
import { Section } from '../components/section.tsx';
import { RelativeTime } from '../components/time.tsx';
import { setFlash } from '../flash.ts';
import { formatSize, parseTime, shortDigest } from '../format.ts';
import { useLoad } from '../load.ts';
import { repositoryHref } from '../reference.ts';
import { navigate } from '../router.ts';
import { handleUnauthorized, useSession } from '../session.ts';

const KINDS: Record<ManifestDetail['kind'], string> = { image: 'Image', index: 'Index (several platforms)', artifact: 'Artifact' };
const CREATED_ANNOTATION = 'org.opencontainers.image.created';

export function ManifestPage({ name, tag, digest }: { name: string; tag: string | null; digest: string | null }) {
  const state = useSession();
  const { session } = state;
  const reference = digest ?? encodeURIComponent(tag ?? 'latest');
  const title = digest ? `${name}@${shortDigest(digest)}` : `${name}:${tag}`;
  const { data, error } = useLoad<ManifestDetail>(`/api/v1/repositories/${namePath(name)}/manifests/${reference}`);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  const remove = async (manifest: ManifestDetail) => {
    setBusy(true);
    setDeleteError(null);
    try {
      await request<DeleteResult>('DELETE', `/api/v1/repositories/${namePath(name)}/manifests/${manifest.digest}`);
      setFlash(`Deleted manifest ${shortDigest(manifest.digest)}`);
      navigate(repositoryHref(name));
    } catch (caught) {
      if (!handleUnauthorized(caught, state)) setDeleteError(caught);
      setBusy(false);
    }
  };

  const pullReference = `${session.registryHost}/${name}${digest ? `@${digest}` : `:${tag}`}`;
  return (
    <>
      <PageHeading title={title} />
      <p class="breadcrumb">
        Repository <a href={repositoryHref(name)}>{name}</a>
      </p>
      <ErrorAlert error={error} notFound={`${title} does not exist, or you may not pull it.`} />
      {data && (
        <>
          <Summary manifest={data} />
          {data.mayDelete && (
            <p>
              <button type="button" class="danger-outline" onClick={() => setConfirming(true)}>
                Delete manifest
              </button>
            </p>
          )}
          <Section title="Pull">
            <PullCommand tool="docker" reference={pullReference} />
            <PullCommand tool="podman" reference={pullReference} />
            <PullCommand tool="skiff" reference={pullReference} />
          </Section>
          {data.kind !== 'index' && <Layers layers={data.layers} />}
          {data.config && <Configuration config={data.config} />}
          {data.config && <History config={data.config} layers={data.layers} />}
          {data.kind === 'index' && <Platforms manifest={data} />}
          <Referrers manifest={data} />
          <Section title="Manifest JSON">
            <details>
              <summary>Show manifest JSON</summary>
              <pre class="json" tabIndex={0}>
                {data.raw}
              </pre>
            </details>
          </Section>
          {confirming && (
            <ConfirmDialog
              title={`Delete manifest ${shortDigest(data.digest)}?`}
              confirmLabel="Delete"
              busyLabel="Deleting…"
              busy={busy}
              error={deleteError}
              onConfirm={() => void remove(data)}
              onCancel={() => setConfirming(false)}
            >
              <p>
                The manifest <code class="wrap">{data.digest}</code> is removed from {name}
                {data.tags.length > 0 ? <>, with every tag on it: {data.tags.join(', ')}</> : ''}. Layers nothing else uses are freed by the next garbage collection.
              </p>
            </ConfirmDialog>
          )}
        </>
      )}
    </>
  );
}

function platformOf(config: ConfigInfo): string | null {
  if (!config.os && !config.architecture) return null;
  return [config.os ?? 'unknown', config.architecture ?? 'unknown', config.variant].filter(Boolean).join('/');
}

function Summary({ manifest }: { manifest: ManifestDetail }) {
  const created = manifest.created ?? manifest.annotations[CREATED_ANNOTATION] ?? null;
  const annotations = Object.entries(manifest.annotations);
  const platform = manifest.config ? platformOf(manifest.config) : null;
  return (
    <Facts>
      <Fact label="Digest">
        <code class="wrap">{manifest.digest}</code>
      </Fact>
      <Fact label="Media type">
        <code class="wrap">{manifest.mediaType}</code>
      </Fact>
      <Fact label="Kind">{KINDS[manifest.kind]}</Fact>
      <Fact label="Size">
        {formatSize(manifest.totalSize)} <span class="muted">(manifest {formatSize(manifest.size)})</span>
      </Fact>
      <Fact label="Tags">
        {manifest.tags.length === 0 ? (
          <span class="muted">none (untagged)</span>
        ) : (
          <ul class="inline-list">
            {manifest.tags.map((tag) => (
              <li key={tag}>
                <a href={repositoryHref(manifest.name, { tag })}>{tag}</a>
              </li>
            ))}
          </ul>
        )}
      </Fact>
      <Fact label="Created">
        <RelativeTime ms={parseTime(created)} raw={created} />
      </Fact>
      {manifest.kind === 'index' ? (
        <Fact label="Platforms">
          <OrDash value={manifest.platforms.map((entry) => entry.platform).join(', ')} />
        </Fact>
      ) : (
        platform && <Fact label="Platform">{platform}</Fact>
      )}
      {manifest.artifactType && (
        <Fact label="Artifact type">
          <code class="wrap">{manifest.artifactType}</code>
        </Fact>
      )}
      {manifest.subject && (
        <Fact label="Subject">
          <a href={repositoryHref(manifest.name, { digest: manifest.subject })}>
            <code class="wrap">{manifest.subject}</code>
          </a>
        </Fact>
      )}
      {annotations.length > 0 && (
        <Fact label="Annotations">
          <Annotations entries={annotations} />
        </Fact>
      )}
    </Facts>
  );
}

function Annotations({ entries }: { entries: [string, string][] }) {
  if (entries.length === 0) return <span class="muted">—</span>;
  return (
    <ul class="plain-list">
      {entries.map(([key, value]) => (
        <li key={key}>
          <code class="wrap">{key}</code>: <span class="wrap">{value}</span>
        </li>
      ))}
    </ul>
  );
}

function Layers({ layers }: { layers: LayerInfo[] }) {
  const total = layers.reduce((sum, layer) => sum + layer.size, 0);
  return (
    <Section title="Layers">
      {layers.length === 0 ? (
        <p class="muted">No layers</p>
      ) : (
        <ScrollBox>
          <table aria-label="Layers" class="list">
            <thead>
              <tr>
                <th scope="col" class="num">
                  #
                </th>
                <th scope="col">Digest</th>
                <th scope="col">Media type</th>
                <th scope="col" class="num">
                  Size
                </th>
              </tr>
            </thead>
            <tbody>
              {layers.map((layer, index) => (
                <tr key={`${index}-${layer.digest}`}>
                  <td class="num">{index + 1}</td>
                  <td>
                    <ShortDigest digest={layer.digest} />
                  </td>
                  <td>
                    <code class="wrap">{layer.mediaType}</code>
                  </td>
                  <td class="num">{formatSize(layer.size)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row" colSpan={3}>
                  Total ({layers.length} {layers.length === 1 ? 'layer' : 'layers'})
                </th>
                <td class="num">{formatSize(total)}</td>
              </tr>
            </tfoot>
          </table>
        </ScrollBox>
      )}
    </Section>
  );
}

/** An argv as the config holds it, in JSON like `docker inspect` shows it. */
function Argv({ value }: { value: string[] | null }) {
  return value === null || value.length === 0 ? <span class="muted">—</span> : <code class="wrap">{JSON.stringify(value)}</code>;
}

function Configuration({ config }: { config: ConfigInfo }) {
  const labels = Object.entries(config.labels);
  return (
    <Section title="Configuration">
      <Facts>
        <Fact label="OS/Arch">
          <OrDash value={platformOf(config)} />
        </Fact>
        <Fact label="Entrypoint">
          <Argv value={config.entrypoint} />
        </Fact>
        <Fact label="Cmd">
          <Argv value={config.cmd} />
        </Fact>
        <Fact label="Working dir">
          <OrDash value={config.workingDir && <code class="wrap">{config.workingDir}</code>} />
        </Fact>
        <Fact label="User">
          <OrDash value={config.user && <code>{config.user}</code>} />
        </Fact>
        {config.author && <Fact label="Author">{config.author}</Fact>}
        <Fact label="Exposed ports">
          <OrDash value={config.exposedPorts.join(', ')} />
        </Fact>
        <Fact label="Env">
          {config.env.length === 0 ? (
            <span class="muted">—</span>
          ) : (
            <ul class="plain-list">
              {config.env.map((variable) => (
                <li key={variable}>
                  <code class="wrap">{variable}</code>
                </li>
              ))}
            </ul>
          )}
        </Fact>
        <Fact label="Labels">
          {labels.length === 0 ? (
            <span class="muted">—</span>
          ) : (
            <ScrollBox>
              <table aria-label="Labels" class="list compact">
                <thead>
                  <tr>
                    <th scope="col">Key</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {labels.map(([key, value]) => (
                    <tr key={key}>
                      <td>
                        <code class="wrap">{key}</code>
                      </td>
                      <td class="wrap">{value}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </ScrollBox>
          )}
        </Fact>
      </Facts>
    </Section>
  );
}

function History({ config, layers }: { config: ConfigInfo; layers: LayerInfo[] }) {
  // The history's entries that made a layer are the layers, in order.
  let layerIndex = 0;
  const rows = config.history.map((entry) => ({ entry, layer: entry.emptyLayer ? null : (layers[layerIndex++] ?? null) }));
  return (
    <Section title="History">
      {rows.length === 0 ? (
        <p class="muted">No history in the configuration</p>
      ) : (
        <ScrollBox>
          <table aria-label="History" class="list history">
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Created by</th>
                <th scope="col" class="num">
                  Layer
                </th>
                <th scope="col">Comment</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ entry, layer }, index) => (
                <tr key={index}>
                  <td class="nowrap">
                    <RelativeTime ms={parseTime(entry.created)} raw={entry.created} />
                  </td>
                  <td>
                    <code class="created-by">{entry.createdBy ?? ''}</code>
                  </td>
                  <td class="num nowrap">{entry.emptyLayer ? <span class="muted">empty layer</span> : layer ? formatSize(layer.size) : <span class="muted">—</span>}</td>
                  <td class="wrap">{entry.comment ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </Section>
  );
}

function Platforms({ manifest }: { manifest: ManifestDetail }) {
  return (
    <Section title="Platforms">
      <ScrollBox>
        <table aria-label="Platforms" class="list">
          <thead>
            <tr>
              <th scope="col">Platform</th>
              <th scope="col">Digest</th>
              <th scope="col">Media type</th>
              <th scope="col" class="num">
                Size
              </th>
            </tr>
          </thead>
          <tbody>
            {manifest.platforms.map((entry) => (
              <tr key={entry.digest}>
                <td class="name">
                  <a href={repositoryHref(manifest.name, { digest: entry.digest })}>{entry.platform}</a>
                </td>
                <td>
                  <ShortDigest digest={entry.digest} />
                </td>
                <td>
                  <code class="wrap">{entry.mediaType}</code>
                </td>
                <td class="num">{formatSize(entry.size)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollBox>
    </Section>
  );
}

function Referrers({ manifest }: { manifest: ManifestDetail }) {
  return (
    <Section title="Referrers">
      {manifest.referrers.length === 0 ? (
        <p class="muted">No referrers</p>
      ) : (
        <ScrollBox>
          <table aria-label="Referrers" class="list">
            <thead>
              <tr>
                <th scope="col">Artifact type</th>
                <th scope="col">Digest</th>
                <th scope="col">Media type</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col">Annotations</th>
              </tr>
            </thead>
            <tbody>
              {manifest.referrers.map((referrer) => (
                <tr key={referrer.digest}>
                  <td>
                    <OrDash value={referrer.artifactType && <code class="wrap">{referrer.artifactType}</code>} />
                  </td>
                  <td>
                    <a href={repositoryHref(manifest.name, { digest: referrer.digest })} title={referrer.digest}>
                      <code>{shortDigest(referrer.digest)}</code>
                    </a>
                  </td>
                  <td>
                    <code class="wrap">{referrer.mediaType}</code>
                  </td>
                  <td class="num">{formatSize(referrer.size)}</td>
                  <td>
                    <Annotations entries={Object.entries(referrer.annotations)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </Section>
  );
}
