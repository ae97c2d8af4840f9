// The schema cutter behind scripts/cut-provider-schemas (run by it; see there). Reads the CDK
// for Terraform provider packages given as arguments (their extracted `package/` directories)
// and prints, as JSON, the schema of every provider, resource and data source named in $USED
// ("resource aws_s3_bucket" lines): arguments with their type and whether they are required,
// blocks with their nesting (single = at most one, list, set), whether one is required, and
// their own arguments and blocks.
'use strict';
const fs = require('fs');
const path = require('path');

const used = (process.env.USED || '').split('\n').filter(Boolean).map((l) => {
  const [kind, type] = l.trim().split(/\s+/);
  return { kind, type };
});

const lowerFirst = (s) => s[0].toLowerCase() + s.slice(1);
const kindOfBase = { TerraformResource: 'resource', TerraformDataSource: 'data', TerraformProvider: 'provider' };

// The `const attrs = { ... };` object that starts after `from` in `js`: its entries.
function attrsAfter(js, from, where) {
  const start = js.indexOf('const attrs = {', from);
  if (start < 0) throw new Error(`no attrs in ${where}`);
  const end = js.indexOf('// remove undefined attributes', start);
  if (end < 0) throw new Error(`unterminated attrs in ${where}`);
  const body = js.slice(start, end);
  const entry = /(\w+): \{\s*value: (.*),\s*isBlock: (true|false),\s*type: "(\w+)",\s*storageClassType: "(\w+)",\s*\}/g;
  const out = [];
  for (let m; (m = entry.exec(body));) {
    const camel = /(?:this\._|struct!?\.)(\w+)/.exec(m[2]);
    if (!camel) throw new Error(`${where}: no property in the value of ${m[1]}`);
    out.push({ tf: m[1], camel: camel[1], value: m[2], isBlock: m[3] === 'true', type: m[4], storage: m[5] });
  }
  return out;
}

function load(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const jsii = JSON.parse(fs.readFileSync(path.join(dir, '.jsii'), 'utf8'));
  const byName = new Map();
  for (const t of Object.values(jsii.types)) byName.set(t.name, t);
  const index = new Map(); // "resource aws_s3_bucket" -> { file, className }
  const lib = path.join(dir, 'lib');
  for (const d of fs.readdirSync(lib)) {
    const file = path.join(lib, d, 'index.js');
    if (!fs.existsSync(file)) continue;
    const js = fs.readFileSync(file, 'utf8');
    const rt = /\n(\w+)\.tfResourceType = "(\w+)";/.exec(js);
    if (!rt) continue;
    const cls = new RegExp(`class ${rt[1]} extends cdktf\\.(\\w+)`).exec(js);
    const kind = cls && kindOfBase[cls[1]];
    if (kind) index.set(`${kind} ${rt[2]}`, { file, className: rt[1] });
  }
  return { pkg, jsii, byName, index };
}

function block(p, js, from, structName, where) {
  const jt = p.byName.get(structName);
  if (!jt) throw new Error(`${where}: ${structName} is not in the .jsii assembly`);
  const props = new Map((jt.properties || []).map((x) => [x.name, x]));
  const attributes = {};
  const blocks = {};
  const entries = from === null ? [] : attrsAfter(js, from, where);
  for (const a of entries) {
    const prop = props.get(a.camel);
    if (!prop) throw new Error(`${where}: ${a.tf} (${a.camel}) has no property in ${structName}`);
    const required = !prop.optional;
    if (!a.isBlock) {
      attributes[a.tf] = { type: a.storage, required };
      continue;
    }
    const nested = a.storage.replace(/(List|Map|OutputReference)$/, '');
    const fn = `function ${lowerFirst(nested)}ToHclTerraform(struct) {`;
    const at = js.indexOf(fn);
    if (at < 0) throw new Error(`${where}: no ${fn}`);
    // An empty block type (no arguments) has no attrs object before the next function.
    const nextFn = js.indexOf('\nfunction ', at + fn.length);
    const attrsAt = js.indexOf('const attrs = {', at);
    const hasAttrs = attrsAt >= 0 && (nextFn < 0 || attrsAt < nextFn);
    const nesting = !a.value.includes('listMapperHcl') ? 'single' : a.type === 'set' ? 'set' : 'list';
    blocks[a.tf] = { nesting, required, ...block(p, js, hasAttrs ? at : null, nested, `${where}.${a.tf}`) };
  }
  return { attributes: sorted(attributes), blocks: sorted(blocks) };
}

function sorted(o) {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

const pkgs = process.argv.slice(2).map(load);
const out = {
  'generated-by': 'scripts/cut-provider-schemas',
  packages: {},
  provider: {},
  resource: {},
  data: {},
};
for (const p of pkgs) {
  out.packages[p.pkg.name] = {
    version: p.pkg.version,
    provider: `${p.pkg.cdktf.provider.name} ${p.pkg.cdktf.provider.version}`,
  };
}
const missing = [];
for (const { kind, type } of used) {
  if (kind === 'resource' && type === 'terraform_data') {
    // Built into Terraform itself (no provider package): its two arguments take any value.
    out.resource[type] = { builtin: true, attributes: { input: { type: 'any', required: false }, triggers_replace: { type: 'any', required: false } }, blocks: {} };
    continue;
  }
  const p = pkgs.find((x) => x.index.has(`${kind} ${type}`));
  if (!p) {
    missing.push(`${kind} ${type}`);
    continue;
  }
  const { file, className } = p.index.get(`${kind} ${type}`);
  const js = fs.readFileSync(file, 'utf8');
  const at = js.indexOf('synthesizeHclAttributes() {');
  out[kind][type] = block(p, js, at, `${className}Config`, `${kind} ${type}`);
}
if (missing.length) {
  console.error(`cut-provider-schemas: not in the packages: ${missing.join(', ')}`);
  process.exit(2);
}
for (const k of ['provider', 'resource', 'data']) out[k] = sorted(out[k]);
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
