// A malformed source record. Parsers throw it with a message naming the field; readDataset
// prefixes the record's place (file:line or file#index) and either fails or (skipBad) counts it.
// `hint` says what the user can do about it; without one, the hint is --skip-bad.
export class BadRecord extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}
