/**
 * What the upstream of a mirror gave out, counted at the upstream itself (a CNCF registry) rather
 * than by a proxy in front of it, which would put a hop on every contestant's path: its access log
 * (one line per request, written when the response has ended, with the body bytes written) and
 * its Prometheus gauge of requests in flight, which says when nothing is running any more.
 */
export interface Forwarded {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  status: number;
  /** Response body bytes the upstream wrote. */
  bytes: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// 127.0.0.1 - - [01/Dec/2026:23:43:34 +0000] "GET /v2/… HTTP/1.1" 404 122 "" "curl/7.88.1"
const COMBINED = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)/;

export class UpstreamLog {
  readonly records: Forwarded[] = [];
  /** Access-log lines that did not parse (kept for the error message). */
  readonly unparsed: string[] = [];
  private readonly metricsUrl: string;

  constructor(metricsUrl: string) {
    this.metricsUrl = metricsUrl;
  }

  /** Feed for startCncf's `accessLog`. */
  readonly line = (line: string): void => {
    const match = COMBINED.exec(line);
    if (!match) {
      this.unparsed.push(line);
      return;
    }
    this.records.push({ method: match[1]!, url: match[2]!, status: Number(match[3]), bytes: match[4] === '-' ? 0 : Number(match[4]) });
  };

  /** A position in the record list; `since(mark)` is what was answered after it. */
  mark(): number {
    return this.records.length;
  }

  since(mark: number): Forwarded[] {
    return this.records.slice(mark);
  }

  /** The upstream's `registry_http_in_flight_requests`, summed over its handlers. */
  async inFlight(): Promise<number> {
    const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    let sum = 0;
    let seen = false;
    for (const m of text.matchAll(/^registry_http_in_flight_requests\{[^}]*\} (\S+)$/gm)) {
      sum += Number(m[1]);
      seen = true;
    }
    if (!seen) throw new Error(`${this.metricsUrl} has no registry_http_in_flight_requests`);
    return sum;
  }

  /**
   * Resolves once the upstream has had no request in flight for `quietMs`: a pull-through cache
   * may go on fetching after its client is done (the CNCF registry stores a blob in a goroutine of
   * its own), and those bytes belong to the pull that caused them. The access-log line of the last
   * request is written right after its gauge drops; the quiet time lets it arrive.
   */
  async settle(quietMs = 300, timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let quietSince: number | undefined;
    for (;;) {
      const now = performance.now();
      if ((await this.inFlight()) > 0) quietSince = undefined;
      else quietSince ??= now;
      if (quietSince !== undefined && now - quietSince >= quietMs) return;
      if (now > deadline) throw new Error(`the upstream still has requests in flight after ${timeoutMs / 1000} s`);
      await sleep(50);
    }
  }
}

/** `GET blob ×2, HEAD manifest ×1`: what a list of upstream requests did, for notes. */
export function describeRequests(records: Forwarded[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    const kind = r.url.includes('/blobs/') ? 'blob' : r.url.includes('/manifests/') ? 'manifest' : r.url.split('?')[0]!;
    const key = `${r.method} ${kind}${r.status === 200 ? '' : ` (${r.status})`}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts.size ? [...counts].map(([key, n]) => `${key} ×${n}`).join(', ') : 'none';
}
