/**
 * Anti-replay: a message is accepted only if it is newer than what was last accepted from the same
 * sender. The epoch is the sender's start time, so a restarted member (new epoch, seq from 0) is
 * accepted while a recorded old message never is.
 *
 * A member whose wall clock stepped back across a restart starts with a lower epoch than its
 * previous run. Its messages are accepted once they prove they are newer than anything of that run
 * (`newerRun`: the caller saw it echo one of our heartbeats sent after we last heard the sender,
 * which no recording can). From then on, any epoch other than the current one that is not above
 * the highest ever accepted needs the same proof: recordings of the earlier runs stay refused.
 */
export class ReplayGuard {
  private readonly last = new Map<string, { epoch: number; seq: number; maxEpoch: number }>();

  /** True (and remembered) when newer than anything seen from `sender`, or a provably newer run. */
  accept(sender: string, epoch: number, seq: number, newerRun = false): boolean {
    const prev = this.last.get(sender);
    if (prev === undefined || epoch > prev.maxEpoch) {
      this.last.set(sender, { epoch, seq, maxEpoch: epoch });
      return true;
    }
    if (epoch === prev.epoch ? seq > prev.seq : newerRun) {
      this.last.set(sender, { epoch, seq, maxEpoch: prev.maxEpoch });
      return true;
    }
    return false;
  }
}
