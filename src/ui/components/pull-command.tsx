/**
 * A pull command ready to paste, with a button that copies it and says "Copied" for two seconds
 * next to itself (a status region, so screen readers hear it too).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { copyText } from '../copy.ts';

export function PullCommand({ tool, reference }: { tool: 'docker' | 'podman' | 'skiff'; reference: string }) {
  const command = `${tool} pull ${reference}`;
  const [result, setResult] = useState<'' | 'Copied' | 'Copy failed: select the text and copy it'>('');
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const copy = async () => {
    const copied = await copyText(command);
    setResult(copied ? 'Copied' : 'Copy failed: select the text and copy it');
    clearTimeout(timer.current);
    timer.current = window.setTimeout(() => setResult(''), 2000);
  };
  return (
    <div class="pull">
      <code class="command">{command}</code>
      <button type="button" class="small" onClick={copy}>
        Copy {tool} pull command
      </button>
      <span role="status" class="copied">
        {result}
      </span>
    </div>
  );
}
