/**
 * The pull-through cache: per upstream, how much it holds, how often it answers without going
 * upstream, and which cached tags are stale (past their TTL: the next pull asks upstream again)
 * with when each was last confirmed.
 */
import { useId, useState } from 'preact/hooks';
import type { CachedTagPage, MirrorView, UpstreamView } from '../../server/ui/api-types.ts';
import { query } from '../api.ts';
import { ShortDigest } from '../components/digest.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { Pager } from '../components/pager.tsx';
import { ScrollBox } from '../components/scroll-box.tsx';
import { Section } from '../components/section.tsx';
import { RelativeTime } from '../components/time.tsx';
import { formatCount, formatDuration, formatPercent, formatSize } from '../format.ts';
import { useLoad } from '../load.ts';
import { repositoryHref } from '../reference.ts';

const PAGE_SIZE = 50;

export function MirrorPage() {
  const { data, error, loading } = useLoad<MirrorView>('/api/v1/mirror');
  return (
    <>
      <PageHeading title="Mirror" />
      <ErrorAlert error={error} />
      {loading && !data && <p class="muted">Loading…</p>}
      {data && (
        <>
          <p class="totals">
            Cache: <strong>{formatSize(data.cacheBytes)}</strong> {data.cacheMaxSize === null ? '(no size limit)' : <>of {formatSize(data.cacheMaxSize)}</>}
          </p>
          <ScrollBox>
            <table aria-label="Upstreams" class="list">
              <thead>
                <tr>
                  <th scope="col">Upstream</th>
                  <th scope="col" class="num">
                    Tag TTL
                  </th>
                  <th scope="col" class="num">
                    Repositories
                  </th>
                  <th scope="col" class="num">
                    Cache size
                  </th>
                  <th scope="col" class="num">
                    Hit ratio
                  </th>
                  <th scope="col" class="num">
                    Hits
                  </th>
                  <th scope="col" class="num">
                    Misses
                  </th>
                  <th scope="col" class="num">
                    Stale serves
                  </th>
                  <th scope="col" class="num">
                    Stale tags
                  </th>
                </tr>
              </thead>
              <tbody>
                {data.upstreams.map((upstream) => (
                  <tr key={upstream.host}>
                    {/* One cell for who the upstream is, so the figures fit beside it at 1280 px. */}
                    <td class="name">
                      {upstream.host}
                      <br />
                      <code class="wrap">{upstream.url}</code>
                      <br />
                      <span class="muted">
                        prefix <code>{upstream.prefix}</code>
                        {upstream.default && ' · default for unprefixed names'}
                      </span>
                    </td>
                    <td class="num">{formatDuration(upstream.tagTtl)}</td>
                    <td class="num">{formatCount(upstream.repositories)}</td>
                    <td class="num">{formatSize(upstream.cacheBytes)}</td>
                    <td class="num">{formatPercent(upstream.hitRatio)}</td>
                    <td class="num">{formatCount(upstream.hits)}</td>
                    <td class="num">{formatCount(upstream.misses)}</td>
                    <td class="num">{formatCount(upstream.staleServes)}</td>
                    <td class="num">{formatCount(upstream.staleTags)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
          {data.upstreams.length === 0 && <p class="muted">No upstreams are configured.</p>}
          {data.upstreams.map((upstream) => (
            <CachedTags key={upstream.host} upstream={upstream} />
          ))}
        </>
      )}
    </>
  );
}

function CachedTags({ upstream }: { upstream: UpstreamView }) {
  const [staleOnly, setStaleOnly] = useState(false);
  const [offset, setOffset] = useState(0);
  const checkboxId = useId();
  const { data, error, loading } = useLoad<CachedTagPage>(`/api/v1/mirror/tags${query({ upstream: upstream.host, stale: staleOnly, offset, limit: PAGE_SIZE })}`);
  return (
    <Section title={upstream.host} class="upstream">
      <div class="toolbar">
        <input
          id={checkboxId}
          type="checkbox"
          checked={staleOnly}
          onChange={(event) => {
            setStaleOnly(event.currentTarget.checked);
            setOffset(0);
          }}
        />
        <label for={checkboxId}>Only stale tags</label>
      </div>
      <ErrorAlert error={error} />
      <ScrollBox>
        <table aria-label={`Cached tags of ${upstream.host}`} aria-busy={loading} class="list">
          <thead>
            <tr>
              <th scope="col">Tag</th>
              <th scope="col">Digest</th>
              <th scope="col">Last revalidated</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {data?.tags.map((tag) => (
              <tr key={`${tag.repository}:${tag.tag}`}>
                <td class="name">
                  <a href={repositoryHref(tag.repository, { tag: tag.tag })}>
                    {tag.repository}:{tag.tag}
                  </a>
                  {tag.stale && <span class="badge warning">stale</span>}
                </td>
                <td>
                  <ShortDigest digest={tag.digest} />
                </td>
                <td>{tag.checkedAt === null ? <span class="muted">never</span> : <RelativeTime ms={tag.checkedAt} />}</td>
                <td>
                  <RelativeTime ms={tag.updatedAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollBox>
      <Pager offset={offset} limit={PAGE_SIZE} total={data ? data.total : null} loading={loading} noun={['cached tag', 'cached tags']} empty={staleOnly ? 'No stale tags' : 'No cached tags yet'} onOffset={setOffset} />
    </Section>
  );
}
