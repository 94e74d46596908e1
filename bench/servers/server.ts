/** What every benchmarked server looks like to the cases. */
export interface Server {
  name: string;
  /** `127.0.0.1:port`, for image references. */
  host: string;
  url: string;
  /** The process whose memory we sample (the server itself, not a wrapper shell). */
  pid: number;
  stop(): Promise<void>;
}
