/**
 * HOOK(forwarding): what the console reads from the forwarding queue (appliance/forward/forward-queue.ts, being
 * written): per study and destination, how far forwarding got. It is given to the console by createApp
 * (AppDeps.forwarding); while it is absent (null) the console shows no forwarding filter and no forwarding
 * section, rather than anything made up. The shapes here are the subset of the queue's ForwardProgress /
 * StatusFilter the console uses, so the queue satisfies this interface as it is:
 *
 *   createApp({ ..., forwarding: appliance.forward.queue })   // or whatever object exposes studyStatus/studies
 */
import type { ForwardState } from './study-filters.ts';

export interface ForwardingProgress {
  studyUid: string;
  destination: string;
  state: ForwardState;
  total: number;
  queued: number;
  sending: number;
  done: number;
  retrying: number;
  failed: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastMeaning: string | null;
  updatedAt: string;
}

export interface ForwardingStatusSource {
  /** One entry per destination the study has forwarding jobs for. */
  studyStatus(studyUid: string): ForwardingProgress[];
  /** (study, destination) pairs with at least one job in `state`. */
  studies(filter?: { state?: ForwardState; limit?: number }): Pick<ForwardingProgress, 'studyUid'>[];
}

/** Most studies the forwarding-state filter considers (the newest changed first). */
export const FORWARD_FILTER_LIMIT = 5000;
