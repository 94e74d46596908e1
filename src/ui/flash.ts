/**
 * A message for the next page to show once, such as "Deleted manifest …" after the manifest page
 * sends the user back to the repository's tags: module state, not history state, so the back
 * button does not show it again.
 */
let pending: string | null = null;

export function setFlash(message: string): void {
  pending = message;
}

export function takeFlash(): string | null {
  const message = pending;
  pending = null;
  return message;
}
