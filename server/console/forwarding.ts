/**
 * What the console reads from forwarding (appliance/forward: `appliance.forward`, given to the console by
 * createApp): per study and destination, how far forwarding got, for the list's forwarding filter and the
 * panel's forwarding section. The shapes are the subset of the queue's ForwardProgress / StatusFilter the
 * console uses (the appliance's Forwarding satisfies this interface as it is); without a source (null) the
 * console shows neither, rather than anything made up.
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
