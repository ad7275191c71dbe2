// A malformed source record. Parsers throw it with a message naming the field; readDataset
// prefixes the record's place (file:line or file#index) and either fails or (skipBad) counts it.
export class BadRecord extends Error {}
