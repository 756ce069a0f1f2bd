/**
 * @module When a study is stable: no new instance for `seconds` after its last one. Every stored
 * batch `touch`es its studies; listeners hear `studyStable` once per quiet period, which is where
 * the AI pipeline starts. (In one process; sharing timers across replicas is issue 7's work.)
 */

export interface StudyStableEvent {
  studyUid: string;
  /** When the last instance arrived. */
  lastInstanceAt: Date;
}

export interface StudyStability {
  touch(studyUid: string): void;
  onStable(listener: (event: StudyStableEvent) => void | Promise<void>): () => void;
  /** Studies waiting for their quiet period to end. */
  pending(): number;
  close(): void;
}

export function createStudyStability(
  seconds: number,
  onError: (error: unknown) => void = () => {},
): StudyStability {
  const timers = new Map<string, number>();
  const listeners = new Set<(event: StudyStableEvent) => void | Promise<void>>();
  const fire = (studyUid: string, lastInstanceAt: Date) => {
    timers.delete(studyUid);
    for (const listener of listeners) {
      try {
        Promise.resolve(listener({ studyUid, lastInstanceAt })).catch(onError);
      } catch (e) {
        onError(e);
      }
    }
  };
  return {
    touch(studyUid) {
      const existing = timers.get(studyUid);
      if (existing !== undefined) clearTimeout(existing);
      const at = new Date();
      const timer = setTimeout(() => fire(studyUid, at), seconds * 1000) as unknown as number;
      Deno.unrefTimer(timer);
      timers.set(studyUid, timer);
    },
    onStable(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    pending: () => timers.size,
    close() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      listeners.clear();
    },
  };
}
