/** The mirror rows of the issue. skiff has no pull-through mirror yet; the rows say so instead of vanishing. */
import { series, type Row } from '../model.ts';

export function mirrorCase(): Row[] {
  return ['cold', 'warm'].map((kind) => ({
    id: `mirror-${kind}`,
    title: `mirror ${kind} pull of big`,
    unit: 's',
    better: 'lower',
    skiff: series(),
    peerName: 'CNCF registry proxy',
    peer: series(),
    status: 'not yet built',
  }));
}
