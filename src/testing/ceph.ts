import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, hasCommand } from './peers.ts';

const run = promisify(execFile);

/** Debian's packages (ceph-mon, ceph-osd, radosgw; `ceph` comes with them, from ceph-common). */
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'];

export interface TestCeph {
  /** `http://127.0.0.1:<port>`: radosgw's S3 API. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** How long the start took (ms), for the test log. */
  startMs: number;
  /** The cluster's ceph.conf, for `radosgw-admin -c <conf> …` (e.g. `gc process --include-all`). */
  conf: string;
  /** Stops the daemons it started, by the PIDs in their pid files, and removes the cluster's folder. */
  stop(): Promise<void>;
}

/**
 * As nginxSkipReason (nginx.ts) for Ceph: in CI a missing binary fails the test file, locally it
 * skips with a loud message saying what to install.
 */
export async function cephSkipReason(): Promise<string | false> {
  const missing: string[] = [];
  for (const command of BINARIES) if (!(await hasCommand(command))) missing.push(command);
  if (missing.length === 0) return false;
  const message = `Ceph test cluster missing: ${missing.join(', ')} (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw)`;
  if (process.env.CI) throw new Error(`${message}; CI must run the S3 tests`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

/**
 * The cluster's configuration: what makes a one-node Ceph start in about 2 s and stay small
 * (../shared/ENGINES.md): auth off, messenger v1 only, one replica per pool, 8 PGs, no
 * autoscaler, the monitor committing every 50 ms (pool creation 0.2 s instead of 2 s), and the
 * OSD placed in the CRUSH map by hand (its own start-up update can race the monmap and exit).
 */
function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number, memstoreBytes: number): string {
  return `[global]
fsid = ${fsid}
mon_host = v1:127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr2 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
log_file = ${dir}/log/$name.log
pid_file = ${dir}/run/$name.pid
keyring = ${dir}/keyring
crash_dir = ${dir}/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_osd_min_in_ratio = 0
mon_data_avail_warn = 1
mon_data_avail_crit = 0
auth_allow_insecure_global_id_reclaim = true
mon_warn_on_insecure_global_id_reclaim_allowed = false
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
[mon.a]
mon_data = ${dir}/mon.a
# monmaptool reads a bare address with a port other than 6789 as msgr v2: say v1
public_addr = v1:127.0.0.1:${monPort}
[osd.0]
osd_data = ${dir}/osd.0
osd_objectstore = memstore
memstore_device_bytes = ${memstoreBytes}
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
osd_crush_update_on_start = false
osd_class_update_on_start = false
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw_data = ${dir}/rgw
rgw_enable_apis = s3, admin
rgw_dns_name = localhost
rgw_thread_pool_size = 64
rgw_enable_usage_log = false
rgw_gc_obj_min_wait = 10
rgw_lc_debug_interval = 10
`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** True while `pid` runs and is one of this cluster's daemons (its command line names our config; a zombie's is empty). */
async function ours(pid: number, conf: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return cmdline === undefined || cmdline.includes(conf); // no /proc: trust the pid file
}

/**
 * A throwaway single-node Ceph (one monitor, one memstore OSD, radosgw) in a temp folder on free
 * loopback ports, with an S3 user: a real S3 endpoint for the S3 driver's tests. One per test
 * file (start in `before`, stop in `after`); tests take a bucket each. The objects live in the
 * OSD's memory: 2 GiB at most, or `memstoreBytes` (the benchmark's 1 GiB pushes need more).
 */
export async function startCeph(options: { accessKey?: string; secretKey?: string; memstoreBytes?: number } = {}): Promise<TestCeph> {
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'skiff-ceph-'));
  const conf = join(dir, 'ceph.conf');
  const runDir = join(dir, 'run');
  const accessKey = options.accessKey ?? 'testaccesskey';
  const secretKey = options.secretKey ?? 'testsecretkey';
  const daemonPids = async (): Promise<number[]> => {
    const files = (await readdir(runDir).catch(() => [] as string[])).filter((name) => name.endsWith('.pid'));
    const pids = await Promise.all(files.map(async (name) => Number((await readFile(join(runDir, name), 'utf8').catch(() => '')).trim())));
    return pids.filter((pid) => Number.isInteger(pid) && pid > 0);
  };
  // A test process that dies without stop() must not leave daemons behind: the daemons detach.
  let known: number[] = [];
  const onExit = (): void => {
    for (const pid of known) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const stop = async (): Promise<void> => {
    const pids = [...new Set([...known, ...(await daemonPids())])];
    const alive = async () => (await Promise.all(pids.map(async (pid) => ((await ours(pid, conf)) ? pid : 0)))).filter((pid) => pid > 0);
    // SIGKILL at once: the objects live in the OSD's memory, so there is nothing to save, and on
    // SIGTERM the OSD and radosgw linger for seconds trying to reach the monitor that went first.
    for (const pid of await alive()) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && (await alive()).length > 0; i++) await sleep(20);
    known = [];
    process.removeListener('exit', onExit);
    await rm(dir, { recursive: true, force: true });
  };

  /** Runs a Ceph tool to completion; failures carry its output and point at the logs. */
  const tool = async (command: string, args: string[], timeoutMs = 30_000): Promise<string> => {
    try {
      const { stdout } = await run(command, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
      return stdout;
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()} (logs in ${join(dir, 'log')})`);
    }
  };
  /**
   * Starts a daemon, which forks into the background and writes its pid file; its early output
   * goes to a file (a pipe would stay open in the detached daemon and never close).
   */
  const daemon = async (command: string, args: string[]): Promise<void> => {
    const out = await open(join(dir, 'log', `${command}.out`), 'a');
    try {
      const child = spawn(command, ['-c', conf, ...args], { stdio: ['ignore', out.fd, out.fd] });
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (exitCode) => resolve(exitCode));
      });
      if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: see ${join(dir, 'log')}`);
    } finally {
      await out.close();
    }
    known = await daemonPids();
  };
  /**
   * The `ceph` CLI. A monitor that has just formed its quorum sometimes refuses the CLI's first
   * step ("problem getting command descriptions from mon", EPERM): nothing was sent yet, so the
   * command is tried again (seen once in ~40 starts, in CI).
   */
  const ceph = async (args: string[], timeoutMs?: number): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await tool('ceph', ['-c', conf, '--connect-timeout', '5', ...args], timeoutMs);
      } catch (error) {
        if (attempt >= 10 || !/problem getting command descriptions/.test((error as Error).message)) throw error;
        await sleep(200 * attempt);
      }
    }
  };
  const poll = async (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms (logs in ${join(dir, 'log')})`);
      await sleep(100);
    }
  };

  try {
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    for (const sub of ['run', 'log', 'mon.a', 'osd.0', 'rgw', 'crash']) await mkdir(join(dir, sub), { recursive: true });
    const fsid = randomUUID();
    await writeFile(conf, cephConf(dir, fsid, monPort, rgwPort, options.memstoreBytes ?? 2 * 1024 ** 3));

    await tool('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
    await tool('ceph-mon', ['-c', conf, '-i', 'a', '--mkfs', '--monmap', join(dir, 'monmap')]);
    await daemon('ceph-mon', ['-i', 'a']);
    await poll('the monitor did not answer', 15_000, async () => (await ceph(['mon', 'stat'], 6000)).length > 0);

    const osdUuid = randomUUID();
    await ceph(['osd', 'new', osdUuid]); // -> osd.0
    await tool('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    await ceph(['osd', 'crush', 'add', 'osd.0', '1.0', 'root=default']);
    await daemon('ceph-osd', ['-i', '0']);
    await poll('osd.0 did not come up', 30_000, async () => (await ceph(['osd', 'stat'], 6000)).includes('1 up'));

    await daemon('radosgw', ['-n', 'client.rgw.a']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await poll('radosgw did not answer', 60_000, async () => {
      const response = await fetch(`${endpoint}/`);
      await response.arrayBuffer();
      return true;
    });
    await tool('radosgw-admin', ['-c', conf, 'user', 'create', '--uid=test', '--display-name=test', `--access-key=${accessKey}`, `--secret-key=${secretKey}`]);
    known = await daemonPids(); // a daemon writes its pid file after its parent returned
    return { endpoint, accessKey, secretKey, region: 'us-east-1', startMs: Math.round(performance.now() - started), conf, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
