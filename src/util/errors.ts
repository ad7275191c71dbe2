// A user-facing error: the CLI prints its one-line message (no stack trace) and exits non-zero.
// Messages name the file (or flag/record/field) and say what is wrong.
export class MixtuneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MixtuneError';
  }
}
