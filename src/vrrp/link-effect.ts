/**
 * How the VIP interface's link weighs on the election (`vip.trackInterface`, like keepalived's
 * track_interface): down makes this member FAULT, so it releases the VIP and claims nothing while
 * no frame it sends could reach a client; up again clears it. vip/link-watch.ts only reports the
 * state.
 */
import type { LinkState } from '../vip/link-watch';
import type { TrackEffect } from './types';

export function linkEffect(state: LinkState): TrackEffect {
  return state === 'up' ? { kind: 'ok' } : { kind: 'fault' };
}
