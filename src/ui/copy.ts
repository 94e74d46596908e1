/**
 * Copy text to the clipboard. The Clipboard API exists only in secure contexts (https, localhost):
 * on a registry reached over plain http by name, fall back to selecting the text in a hidden
 * textarea and the old `execCommand('copy')`, which still works from a click.
 */
export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Denied (a permission policy, a browser without the user gesture): try the old way.
    }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.readOnly = true;
  area.className = 'offscreen';
  area.setAttribute('aria-hidden', 'true');
  area.tabIndex = -1;
  const focused = document.activeElement as HTMLElement | null;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  area.remove();
  focused?.focus();
  return copied;
}
