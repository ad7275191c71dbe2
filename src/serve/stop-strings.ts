// OpenAI `stop` sequences on streamed text: generation ends at the first occurrence of any of
// them, which is not returned. While streaming, text that could be the start of a stop sequence is
// held back until the next tokens decide, so a client never receives part of a stop sequence.

export class StopStrings {
  private pending = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds newly decoded text; returns what may be sent now, and whether a stop sequence was found. */
  push(text: string): { emit: string; stopped: boolean } {
    this.pending += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const emit = this.pending.slice(0, cut);
      this.pending = '';
      return { emit, stopped: true };
    }
    const hold = this.heldBack();
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit, stopped: false };
  }

  /** The text held back at the end of generation (no stop sequence completed). */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  /** Length of the longest end of the pending text that begins some stop sequence. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
