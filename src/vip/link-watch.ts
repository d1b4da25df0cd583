/**
 * Watches one interface's link state through rtnetlink events (RTNLGRP_LINK), for
 * `vip.trackInterface`; vrrp/link-effect.ts says what a state means to the election.
 * Events, not polling, so a cable pull is seen in milliseconds rather than a poll interval.
 */
import { EventEmitter } from 'node:events';
import { describeError, VipdError } from '../errors';
import type { Logger } from '../log/logger';
import { closeRtnl, getLinkByName, openRtnl, type RtNetlinkSocket } from './rtnl';

export type LinkState = 'up' | 'down';

export interface LinkWatchEvents {
  /** The initial state once start() has read it, then every change. */
  change: [state: LinkState];
}

export class LinkWatch extends EventEmitter<LinkWatchEvents> {
  private rtnl: RtNetlinkSocket | undefined;
  private index: number | undefined;
  private current: LinkState | undefined;
  private reading: Promise<void> | undefined;
  private stale = false;
  private closed = false;

  constructor(private readonly opts: { readonly interface: string; readonly log: Logger }) {
    super();
  }

  /**
   * Subscribes, then reads the current state (subscribing first, so no change falls between the
   * two), emits it, and resolves with it. A missing interface counts as down.
   */
  async start(): Promise<LinkState> {
    if (this.closed) throw new VipdError('VIPD_NETLINK', 'this link watch is closed');
    if (this.rtnl === undefined) {
      const rtnl = openRtnl((err) => {
        // ENOBUFS: events overflowed the socket buffer and some are lost; re-read the truth.
        this.opts.log.warn(
          { err: describeError(err), interface: this.opts.interface },
          'link events lost; re-reading the link',
        );
        this.resync();
      });
      this.rtnl = rtnl;
      rtnl.on('message', (messages) => {
        for (const msg of messages) {
          if (msg.kind !== 'link') continue;
          if (msg.data.index === this.index || msg.attrs.ifname === this.opts.interface) {
            this.resync();
            return;
          }
        }
      });
      rtnl.addMembership('LINK');
    }
    this.resync();
    while (this.reading !== undefined) await this.reading;
    if (this.current === undefined)
      throw new VipdError('VIPD_NETLINK', `cannot read the link state of ${this.opts.interface}`);
    return this.current;
  }

  state(): LinkState | undefined {
    return this.current;
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.rtnl !== undefined) closeRtnl(this.rtnl);
    this.rtnl = undefined;
  }

  /**
   * An event only says "this link changed": the state is always re-read with a fresh request, one
   * read at a time and once more if events arrived meanwhile. That sidesteps ordering races between
   * the initial read and queued events, and an interface deleted and re-created under a new index.
   */
  private resync(): void {
    if (this.closed) return;
    if (this.reading !== undefined) {
      this.stale = true;
      return;
    }
    this.reading = (async () => {
      try {
        do {
          this.stale = false;
          const rtnl = this.rtnl;
          if (rtnl === undefined) return;
          try {
            const link = await getLinkByName(rtnl, this.opts.interface);
            this.index = link?.index;
            this.apply(link?.up === true ? 'up' : 'down');
          } catch (err) {
            if (!this.closed)
              this.opts.log.warn(
                { err: describeError(err), interface: this.opts.interface },
                'cannot read the link state',
              );
          }
        } while (this.stale && !this.closed);
      } finally {
        this.reading = undefined;
      }
    })();
  }

  private apply(state: LinkState): void {
    if (this.closed || state === this.current) return;
    this.current = state;
    this.emit('change', state);
  }
}
