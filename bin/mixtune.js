#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`mixtune: ${err && err.message ? err.message : String(err)}`);
    process.exit(1);
  },
);
