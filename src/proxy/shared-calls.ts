/**
 * Singleflight for small calls (a manifest fetch, a tag revalidation): callers that ask for the same
 * key while a call runs share its promise, result or failure. In an instance (DESIGN.md §2.5).
 */
export class SharedCalls {
  private readonly running = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const current = this.running.get(key);
    if (current) return current as Promise<T>;
    const call = (async () => work())();
    this.running.set(key, call);
    const forget = (): void => {
      if (this.running.get(key) === call) this.running.delete(key);
    };
    call.then(forget, forget);
    return call;
  }

  get size(): number {
    return this.running.size;
  }
}
