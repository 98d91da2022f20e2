// Checks the simulator's copy of the CodeChat server's request schemas against the server's
// own source, with the validator the server uses (the npm package jsonschema), and computes
// the server's verdict on every body in crates/sim/tests/fixtures/schema-verdicts.json.
//
// Run by scripts/server-schemas.sh, which transpiles the server's validate.schema.ts and
// installs the validator; see that script. Exits 1 when anything differs.
'use strict';
const fs = require('fs');
const path = require('path');
const { validate } = require('jsonschema');

const [compiled, repo, mode] = process.argv.slice(2);
const server = require(compiled);
// The simulator's file for each of the server's exported schemas.
const files = {
  sendText: 'textMessageSchema',
  sendReaction: 'reactionMessageSchema',
  markMessageAsRead: 'readMessageSchema',
  updatePresence: 'updatePresenceSchema',
  findMessages: 'messageValidateSchema',
  refreshToken: 'oldTokenSchema',
  instanceName: 'instanceNameSchema',
  whatsappNumbers: 'whatsappNumberSchema',
};
let failed = false;
const canonical = (v) =>
  JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
      : x,
  );
const serverSchema = (name) => {
  const schema = { ...server[files[name]] };
  delete schema.$id; // a random ULID, made anew at every start of the server
  return schema;
};
for (const name of Object.keys(files)) {
  const ours = JSON.parse(fs.readFileSync(path.join(repo, 'crates/sim/schemas', name + '.json')));
  const same = canonical(ours) === canonical(serverSchema(name));
  console.log(`${same ? 'same     ' : 'DIFFERENT'} crates/sim/schemas/${name}.json = ${files[name]}`);
  failed = failed || !same;
}

// The server's words for a body (dataValidate in src/validate/router.validate.ts).
const verdict = (name, body) =>
  validate(body, serverSchema(name)).errors.map(({ property, stack, schema }) => ({
    property: property.replace('instance.', ''),
    message: schema.description ? schema.description : stack.replace('instance.', ''),
  }));
const table = path.join(repo, 'crates/sim/tests/fixtures/schema-verdicts.json');
const cases = JSON.parse(fs.readFileSync(table));
let differ = 0;
for (const c of cases) {
  const errors = verdict(c.schema, c.body);
  if (canonical(errors) !== canonical(c.errors)) {
    differ += 1;
    console.log(`DIFFERENT verdict on ${c.schema} ${JSON.stringify(c.body)}: ${JSON.stringify(errors)}`);
  }
  c.errors = errors;
}
if (mode === '--write') {
  fs.writeFileSync(table, JSON.stringify(cases, null, 2) + '\n');
  console.log(`wrote the server's verdicts on ${cases.length} bodies to ${path.relative(repo, table)}`);
} else {
  console.log(`${cases.length - differ} of ${cases.length} verdicts are the server's`);
  failed = failed || differ > 0;
}
process.exit(failed ? 1 : 0);
