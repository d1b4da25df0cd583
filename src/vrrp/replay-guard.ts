/**
 * Anti-replay: a message is accepted only if its (epoch, seq) is newer than the last accepted one
 * from the same sender. The epoch is the sender's start time, so a restarted member (new epoch,
 * seq from 0) is accepted while a recorded old message never is.
 */
export class ReplayGuard {
  private readonly last = new Map<string, { epoch: number; seq: number }>();

  /** True (and remembered) when newer than anything seen from `sender`. */
  accept(sender: string, epoch: number, seq: number): boolean {
    const prev = this.last.get(sender);
    if (prev !== undefined && (epoch < prev.epoch || (epoch === prev.epoch && seq <= prev.seq))) return false;
    this.last.set(sender, { epoch, seq });
    return true;
  }
}
