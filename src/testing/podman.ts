import { join } from 'node:path';

/**
 * podman's global flags for a store of its own under `dir`, as tests run it as root in a
 * container: vfs needs no overlay mount, cgroupfs no systemd, file events no journald.
 */
export function podmanStoreArgs(dir: string): string[] {
  return [
    '--root', join(dir, 'root'),
    '--runroot', join(dir, 'runroot'),
    '--tmpdir', join(dir, 'tmp'),
    '--network-config-dir', join(dir, 'networks'),
    '--storage-driver', 'vfs',
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
  ];
}
