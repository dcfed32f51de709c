// Validates rendered Kubernetes objects (a YAML stream per file named on the command line)
// against the Kubernetes OpenAPI schemas that npm's kubernetes-models carries. Prints each
// object and its verdict, then a count; exits 1 on any error, including an unknown kind.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(process.env.K8S_VALIDATE_MODULES + "/");
const yaml = require("js-yaml");

let objects = 0;
let errors = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (doc == null) continue;
    objects++;
    const name = `${file}: ${doc.apiVersion}/${doc.kind} ${doc.metadata?.namespace ?? "-"}/${doc.metadata?.name}`;
    let Model;
    try {
      Model = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)[doc.kind];
      if (typeof Model !== "function") throw new Error("no model");
    } catch {
      errors++;
      console.log(`FAIL ${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
      continue;
    }
    try {
      new Model(doc).validate();
      if (!doc.metadata?.name) throw new Error("metadata.name is missing");
      console.log(`ok   ${name}`);
    } catch (e) {
      errors++;
      const details = e.errors ? JSON.stringify(e.errors, null, 1) : e.message;
      console.log(`FAIL ${name}: ${details}`);
    }
  }
}
console.log(`validated ${objects} objects, ${errors} errors`);
process.exit(errors === 0 && objects > 0 ? 0 : 1);
