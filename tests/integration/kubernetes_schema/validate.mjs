// Validates Kubernetes objects offline against the API types of the npm package
// kubernetes-models (generated from Kubernetes' OpenAPI spec), in two ways:
// - its JSON-schema validator (types, required fields, formats), as Model.validate() does;
// - TypeScript's checker on the object as a literal of the model's interface, which also rejects
//   fields the API does not have (a typo such as `readinesProbe` would otherwise be dropped
//   in silence, by this validator and by a lenient client).
//
// usage: node validate.mjs NODE_MODULES_PARENT < objects.json
// stdin: [{"name": "deployment.yaml#0", "object": {...}}, ...]; stdout: one JSON list with
// {"name", "errors": [...]} per object. Exit 0 unless the validator itself failed.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? ".");
const require = createRequire(path.join(root, "package.json"));
const ts = require("typescript");
const items = JSON.parse(readFileSync(0, "utf8"));

function modelPath({ apiVersion, kind }) {
  const version = apiVersion.includes("/") ? apiVersion : `v1`;  // core group: "v1"
  return `kubernetes-models/${version}/${kind}`;
}

const results = items.map(({ name }) => ({ name, errors: [] }));

// 1. The JSON-schema validator.
items.forEach(({ object }, i) => {
  let Model;
  try {
    Model = require(modelPath(object))[object.kind];
  } catch (e) {
    results[i].errors.push(`no model for apiVersion ${object.apiVersion} kind ${object.kind}`);
    return;
  }
  try {
    new Model(object).validate();
  } catch (e) {
    results[i].errors.push(`schema: ${e.message}`);
  }
});

// 2. TypeScript: one in-memory module, each object a typed constant; lines map back to objects.
const fileName = path.join(root, "__manifests__.ts");
let source = "";
const firstLine = [];
items.forEach(({ object }, i) => {
  if (results[i].errors.some((e) => e.startsWith("no model"))) return;
  source += `import type { I${object.kind} as T${i} } from ${JSON.stringify(modelPath(object))};\n`;
});
items.forEach(({ object }, i) => {
  if (results[i].errors.some((e) => e.startsWith("no model"))) return;
  firstLine[i] = source.split("\n").length - 1;
  source += `export const object${i}: T${i} = ${JSON.stringify(object, null, 2)};\n`;
});
const lines = source.split("\n");
const options = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2020,
                  module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
                  types: [] };
const host = ts.createCompilerHost(options);
const readFile = host.readFile, getSourceFile = host.getSourceFile, fileExists = host.fileExists;
host.fileExists = (f) => f === fileName || fileExists.call(host, f);
host.readFile = (f) => (f === fileName ? source : readFile.call(host, f));
host.getSourceFile = (f, v, ...rest) =>
  f === fileName ? ts.createSourceFile(f, source, v) : getSourceFile.call(host, f, v, ...rest);
const program = ts.createProgram([fileName], options, host);
for (const d of ts.getPreEmitDiagnostics(program)) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
  if (!d.file || d.file.fileName !== fileName) {
    console.error(`validator: ${message}`);
    process.exit(2);
  }
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  let owner = -1;
  firstLine.forEach((start, i) => { if (start !== undefined && start <= line) owner = i; });
  if (owner < 0) {  // an import failed: the package's layout is not what this script expects
    console.error(`validator: ${message}`);
    process.exit(2);
  }
  results[owner].errors.push(`types: ${message} (at: ${lines[line].trim()})`);
}
console.log(JSON.stringify(results, null, 1));
