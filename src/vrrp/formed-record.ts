/**
 * The one piece of election state that outlives the process: "this cluster has formed"
 * (docs/election.md, "Bootstrap"). Until it has, the bootstrap member may hold the VIP alone, so
 * that the first node of a new cluster serves `kubeadm init`; once it has, nobody may, ever again,
 * and a restart must not forget it. One small file per cluster id in `election.stateDir`, written
 * and synced before the heartbeat that says it leaves (the runner calls `record` synchronously).
 */
import { statSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { prepareStateDir, stateDirProblem } from '../config/state-dir';
import { describeError, VipdError } from '../errors';

export class FormedRecord {
  readonly file: string;

  constructor(
    private readonly dir: string,
    private readonly clusterId: number,
    private readonly node: string,
  ) {
    this.file = join(dir, `cluster-${clusterId}.formed`);
  }

  /** Creates the directory if needed and proves it writable: a record that cannot be written is found at start, not later. */
  prepare(): void {
    try {
      prepareStateDir(this.dir);
    } catch (err) {
      // The host checks refuse such a directory before the daemon is built (exit 2); this is for
      // one that changed in between.
      throw new VipdError('VIPD_STATE_DIR', stateDirProblem(this.dir, err), { cause: err });
    }
  }

  /** Whether the record exists. Any file at the path counts (a damaged record is still a record: never bootstrap twice). */
  exists(): boolean {
    try {
      statSync(this.file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new VipdError('VIPD_STATE_DIR', `cannot read ${this.file}: ${describeError(err)}`, { cause: err });
    }
  }

  /**
   * Writes the record durably (a temporary file, fsync, rename, fsync of the directory) on libuv's
   * thread pool, so a slow fsync never blocks the election. Rejects on failure.
   */
  async recordAsync(via: string): Promise<void> {
    const body = `${JSON.stringify({ clusterId: this.clusterId, node: this.node, via, formedAt: new Date().toISOString() })}\n`;
    const tmp = `${this.file}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(body);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.file);
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
