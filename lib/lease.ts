/**
 * A lease on a pointer of the artifact store, taken by compare-and-set: of several claimants that
 * race for it, exactly one holds it. A claim with a higher attempt number takes the lease over from
 * a lower one (the newest attempt of an activity owns its work); a claim with the same or a lower
 * attempt loses to whoever holds it. The holder checks it before each step that must not run twice.
 *
 * In the S3 store the compare-and-set is a conditional PutObject decided by the server, so the lease
 * holds between workers on different hosts; in the folder store a lock file decides, on one host.
 */
import type { ArtifactStore } from './artifacts.ts';

export interface LeaseRecord {
  /** The activity attempt that holds the lease. */
  attempt: number;
  /** Who holds it (host, process and a random part): unique per claimant. */
  holder: string;
  /** When it was taken (ISO time), for people reading the pointer. */
  since: string;
}

export type LeaseCheck = { held: true } | { held: false; heldBy?: LeaseRecord; why: string };

export type LeaseOutcome = { won: true; lease: Lease } | { won: false; heldBy: LeaseRecord; why: string };

export class Lease {
  constructor(
    readonly store: ArtifactStore,
    readonly name: string,
    readonly record: LeaseRecord,
  ) {}

  /** Whether this claimant still holds the lease (nobody newer took it over). */
  async check(): Promise<LeaseCheck> {
    const current = await this.store.getPointer<Partial<LeaseRecord>>(this.name);
    if (current?.holder === this.record.holder) return { held: true };
    if (!current) return { held: false, why: `the lease ${this.name} is gone` };
    const heldBy = asRecord(current);
    return { held: false, heldBy, why: `attempt ${heldBy.attempt} (${heldBy.holder}) took the lease over` };
  }
}

/** Rounds of read and compare-and-set before giving up: each lost round means another claimant wrote. */
const MAX_ROUNDS = 20;

export async function takeLease(store: ArtifactStore, name: string, claim: { attempt: number; holder: string }): Promise<LeaseOutcome> {
  const record: LeaseRecord = { attempt: claim.attempt, holder: claim.holder, since: new Date().toISOString() };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const current = await store.readPointer<Partial<LeaseRecord>>(name);
    if (current) {
      const heldBy = asRecord(current.value);
      if (heldBy.holder === claim.holder) return { won: true, lease: new Lease(store, name, heldBy) };
      if (heldBy.attempt >= claim.attempt) {
        return { won: false, heldBy, why: `attempt ${heldBy.attempt} (${heldBy.holder}) holds the lease ${name}` };
      }
    }
    const written = await store.compareAndSetPointer(name, record, current?.version ?? null);
    if (written.written) return { won: true, lease: new Lease(store, name, record) };
  }
  throw new Error(`the lease ${name} changed hands ${MAX_ROUNDS} times while attempt ${claim.attempt} tried to take it`);
}

/** A pointer written by an older Cadenza (`{ attempt }` only, no holder) counts as that attempt's. */
function asRecord(value: Partial<LeaseRecord>): LeaseRecord {
  return {
    attempt: typeof value.attempt === 'number' ? value.attempt : 0,
    holder: typeof value.holder === 'string' ? value.holder : '(an earlier Cadenza version)',
    since: typeof value.since === 'string' ? value.since : '',
  };
}
