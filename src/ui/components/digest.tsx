/** A digest shortened to `sha256:` + 12 hex digits, the full one in the tooltip. */
import { shortDigest } from '../format.ts';

export function ShortDigest({ digest }: { digest: string }) {
  return (
    <code class="digest" title={digest}>
      {shortDigest(digest)}
    </code>
  );
}
