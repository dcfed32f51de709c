// End-to-end check of the distiller API from Node.js: a client that has nothing of the
// project's but its .proto files, loaded at run time, so that the contract alone must
// suffice for a third-party client.
//
//   node distiller_client_check.mjs ADDRESS DATASET [GOOGLE_PROTOS_DIR]
//
// ADDRESS: host:port or http(s)://host:port of a distiller service. DATASET: a dataset
// folder under its data root (e.g. tiny, mnist). GOOGLE_PROTOS_DIR (or DISTILL_GOOGLE_PROTOS):
// a folder holding google/api/annotations.proto and google/api/http.proto; by default the
// Google.Api.CommonProtos NuGet package's content/protos folder. DISTILL_API_KEY, if set,
// is sent as a bearer key. Prints one line "node-client ok ..." and exits 0, or says what
// failed and exits 1.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoProtos = path.resolve(here, '../../protos');
const UNARY_DEADLINE_MS = 30_000;
const WATCH_DEADLINE_MS = Number(process.env.DISTILL_CHECK_WATCH_SECONDS ?? 600) * 1000;
const CANCEL_AFTER_PROGRESS = 2;

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// --- Protos ---------------------------------------------------------------------------

/** The folder with google/api/annotations.proto: argument, env, or the NuGet package cache. */
function findGoogleProtos(given) {
  const has = (dir) => existsSync(path.join(dir, 'google/api/annotations.proto')) && existsSync(path.join(dir, 'google/api/http.proto'));
  if (given) {
    check(has(given), `no google/api/annotations.proto and http.proto under ${given}`);
    return given;
  }
  const caches = [process.env.NUGET_PACKAGES, path.join(homedir(), '.nuget/packages')].filter(Boolean);
  for (const cache of caches) {
    const packageDir = path.join(cache, 'google.api.commonprotos');
    if (!existsSync(packageDir)) continue;
    // Newest version first; versions compare numerically part by part.
    const versions = readdirSync(packageDir).sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    for (const version of versions) {
      const dir = path.join(packageDir, version, 'content/protos');
      if (has(dir)) return dir;
    }
  }
  throw new CheckFailed('google/api/annotations.proto not found: pass its folder as the third argument or in DISTILL_GOOGLE_PROTOS '
    + '(the Google.Api.CommonProtos NuGet package\'s content/protos; `dotnet restore protos` puts it in the NuGet cache)');
}

function loadService(googleProtos) {
  const definition = protoLoader.loadSync(
    ['distill/distiller/v1/distiller.proto', 'distill/kernel/v1/kernel.proto'],
    { includeDirs: [repoProtos, googleProtos], keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
  const proto = grpc.loadPackageDefinition(definition);
  const Service = proto.distill?.distiller?.v1?.DistillerService;
  check(typeof Service === 'function', 'distill.distiller.v1.DistillerService is not in the loaded protos');
  return Service;
}

// --- Calls ----------------------------------------------------------------------------

function target(address) {
  const match = /^(https?):\/\/(.+?)\/?$/.exec(address);
  return match
    ? { host: match[2], credentials: match[1] === 'https' ? grpc.credentials.createSsl() : grpc.credentials.createInsecure() }
    : { host: address, credentials: grpc.credentials.createInsecure() };
}

function metadata() {
  const m = new grpc.Metadata();
  if (process.env.DISTILL_API_KEY) m.set('authorization', `Bearer ${process.env.DISTILL_API_KEY}`);
  return m;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata(), { deadline: Date.now() + UNARY_DEADLINE_MS }, (error, response) => {
      if (error) reject(Object.assign(error, { rpc: method }));
      else resolve(response);
    });
  });
}

/** A server stream read to its end; onItem may return false to stop reading (then the call is cancelled). */
async function stream(client, method, request, onItem) {
  const call = client[method](request, metadata(), { deadline: Date.now() + WATCH_DEADLINE_MS });
  try {
    for await (const item of call) {
      if ((await onItem(item)) === false) {
        call.cancel();
        break;
      }
    }
  } catch (error) {
    throw Object.assign(error, { rpc: method });
  }
}

// google.rpc.Status from the grpc-status-details-bin trailer, read by hand (a few varint
// and length-delimited fields) so that the check needs no protobuf library of its own.
function readFields(buffer) {
  const fields = [];
  let offset = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buffer[offset++];
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  while (offset < buffer.length) {
    const key = Number(varint());
    const [number, wire] = [key >> 3, key & 7];
    if (wire === 0) fields.push({ number, value: varint() });
    else if (wire === 2) {
      const length = Number(varint());
      fields.push({ number, value: buffer.subarray(offset, offset + length) });
      offset += length;
    } else if (wire === 1) offset += 8;
    else if (wire === 5) offset += 4;
    else break;
  }
  return fields;
}

/** The ErrorInfo reason of a failed call, or undefined. */
function errorReason(error) {
  const details = error.metadata?.get('grpc-status-details-bin')?.[0];
  if (!details) return undefined;
  for (const field of readFields(Buffer.from(details))) {
    if (field.number !== 3) continue;  // Status.details: repeated Any
    const any = readFields(field.value);
    const typeUrl = any.find((f) => f.number === 1)?.value.toString();
    const value = any.find((f) => f.number === 2)?.value;
    if (typeUrl?.endsWith('/google.rpc.ErrorInfo') && value)
      return readFields(value).find((f) => f.number === 1)?.value.toString();
  }
  return undefined;
}

function describe(error) {
  if (error instanceof CheckFailed) return error.message;
  if (typeof error.code === 'number') {
    const code = Object.keys(grpc.status).find((k) => grpc.status[k] === error.code) ?? error.code;
    const reason = errorReason(error);
    return `${error.rpc ?? 'call'} failed: ${code}${reason ? ` (${reason})` : ''}: ${error.details || error.message}`;
  }
  return error.stack ?? String(error);
}

async function expectError(promise, code, what) {
  try {
    await promise;
  } catch (error) {
    check(error.code === code, `${what}: expected ${code}, got ${describe(error)}`);
    return error;
  }
  throw new CheckFailed(`${what}: expected an error, the call succeeded`);
}

// --- Checks ---------------------------------------------------------------------------

/** Events after a sequence number until the stream ends; checks they are gapless. */
async function watch(client, name, afterSequence, { cancelAfterProgress } = {}) {
  const events = [];
  let progress = 0;
  let cancelled = false;
  await stream(client, 'WatchRun', { name, afterSequence }, async (event) => {
    const expected = events.length ? events.at(-1).sequence + 1 : afterSequence + 1;
    check(event.sequence === expected, `WatchRun(${name}, after ${afterSequence}): sequence ${event.sequence} where ${expected} was due`);
    events.push(event);
    if (event.event === 'progress' && ++progress === cancelAfterProgress && !cancelled) {
      cancelled = true;
      try {
        const run = await unary(client, 'CancelRun', { name });
        check(run.name === name, `CancelRun returned ${run.name}, not ${name}`);
      } catch (error) {
        if (error.code === grpc.status.FAILED_PRECONDITION)
          throw new CheckFailed(`the run ended before it could be cancelled (${describe(error)}); use a larger dataset or more steps`);
        throw error;
      }
    }
    return true;
  });
  check(events.length > 0, `WatchRun(${name}, after ${afterSequence}) ended without events`);
  return { events, progress };
}

function lastState(events) {
  return events.filter((e) => e.event === 'state').at(-1)?.state.state;
}

function decodeFloat32(tensor, what) {
  check(tensor && tensor.dtype === 'DATA_TYPE_FLOAT32', `${what}: expected a float32 tensor, got ${tensor?.dtype}`);
  const shape = tensor.shape.map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  check(tensor.data.length === count * 4, `${what}: shape [${shape}] needs ${count * 4} bytes, got ${tensor.data.length}`);
  const view = new DataView(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = view.getFloat32(i * 4, true);
  return { shape, values };
}

async function main() {
  const [address, dataset, googleArg] = process.argv.slice(2);
  if (!address || !dataset) {
    console.error('usage: node distiller_client_check.mjs ADDRESS DATASET [GOOGLE_PROTOS_DIR]');
    process.exit(2);
  }
  const googleProtos = findGoogleProtos(googleArg ?? process.env.DISTILL_GOOGLE_PROTOS);
  const Service = loadService(googleProtos);
  console.log(`protos loaded: ${Object.keys(Service.service).length} DistillerService methods (google protos: ${googleProtos})`);
  const { host, credentials } = target(address);
  const client = new Service(host, credentials);

  // 1. Idempotent start: the same request id and spec return the same run; another spec is refused.
  const spec = { dataset, supportPerClass: 1, steps: 40, targetBatch: 200, checkpointEvery: 5, evaluateEvery: 20 };
  const requestId = randomUUID();
  const run = await unary(client, 'StartRun', { spec, requestId });
  const name = run.name;
  check(/^runs\/[^/]+$/.test(name), `StartRun returned the name '${name}', not runs/{id}`);
  check(run.requestId === requestId, `StartRun's run carries request id '${run.requestId}', not '${requestId}'`);
  check(run.spec.steps === 40 && run.spec.dataset === dataset, 'StartRun returned another spec than the one sent');
  const again = await unary(client, 'StartRun', { spec, requestId });
  check(again.name === name, `StartRun repeated with request id ${requestId} returned ${again.name}, not ${name}`);
  const reused = await expectError(unary(client, 'StartRun', { spec: { ...spec, targetBatch: 201 }, requestId }),
    grpc.status.ALREADY_EXISTS, 'StartRun with a used request id and another spec');
  const reason = errorReason(reused);
  check(reason === undefined || reason === 'REQUEST_ID_REUSED', `ALREADY_EXISTS with reason ${reason}, not REQUEST_ID_REUSED`);
  console.log(`started ${name} (request id ${requestId}: repeated start returned the same run, another spec got ALREADY_EXISTS ${reason ?? 'without an ErrorInfo'})`);

  // 2. Every run, one per page: no page repeats a run, and the count matches total_size.
  const seen = new Set();
  let pageToken = '';
  let totalSize;
  let pages = 0;
  do {
    const page = await unary(client, 'ListRuns', { pageSize: 1, pageToken, orderBy: 'create_time' });
    totalSize ??= page.totalSize;
    check(page.runs.length <= 1, `ListRuns with page_size 1 returned ${page.runs.length} runs`);
    check(page.totalSize === totalSize, `ListRuns total_size changed from ${totalSize} to ${page.totalSize} between pages`);
    for (const r of page.runs) {
      check(!seen.has(r.name), `ListRuns returned ${r.name} on two pages`);
      seen.add(r.name);
    }
    pageToken = page.nextPageToken;
    check(++pages <= totalSize + 1, `ListRuns still has pages after ${pages} for ${totalSize} runs`);
  } while (pageToken);
  check(seen.size === totalSize, `ListRuns paged through ${seen.size} runs, total_size says ${totalSize}`);
  check(seen.has(name), `ListRuns did not list ${name}`);
  console.log(`listed ${seen.size} runs in ${pages} pages`);

  // 3. Watch, cancel mid-way: the stream ends after the CANCELLED state.
  const first = await watch(client, name, 0, { cancelAfterProgress: CANCEL_AFTER_PROGRESS });
  check(first.progress >= CANCEL_AFTER_PROGRESS, `the run ended after ${first.progress} progress events, before it could be cancelled`);
  check(lastState(first.events) === 'RUN_STATE_CANCELLED' && first.events.at(-1).event === 'state',
    `the watch of the cancelled run ended with ${JSON.stringify(first.events.at(-1))}, not its CANCELLED state`);
  const lastSequence = first.events.at(-1).sequence;
  console.log(`cancelled after ${first.progress} progress events; events 1..${lastSequence}`);

  // 4. Resume; the watch after the last sequence seen continues gaplessly to SUCCEEDED.
  const resumed = await unary(client, 'ResumeRun', { name });
  check(resumed.name === name, `ResumeRun returned ${resumed.name}, not ${name}`);
  check(!['RUN_STATE_CANCELLED', 'RUN_STATE_FAILED'].includes(resumed.state), `ResumeRun left the run ${resumed.state}`);
  const second = await watch(client, name, lastSequence);
  check(lastState(second.events) === 'RUN_STATE_SUCCEEDED', `the resumed run ended ${lastState(second.events)}: `
    + `${second.events.filter((e) => e.event === 'state').at(-1)?.state.message ?? ''}`);
  const done = await unary(client, 'GetRun', { name });
  check(done.state === 'RUN_STATE_SUCCEEDED' && done.step === 40, `GetRun: ${done.state} at step ${done.step}, not SUCCEEDED at 40`);
  console.log(`resumed and succeeded; events ${lastSequence + 1}..${second.events.at(-1).sequence}`);

  // 5. Snapshots: the first and the last in full, decoded and different.
  const snapshots = [];
  pageToken = '';
  do {
    const page = await unary(client, 'ListSnapshots', { parent: name, pageToken });
    snapshots.push(...page.snapshots);
    pageToken = page.nextPageToken;
  } while (pageToken);
  check(snapshots.length >= 2, `ListSnapshots returned ${snapshots.length} snapshots, expected at least 2`);
  for (let i = 1; i < snapshots.length; i++)
    check(snapshots[i].step > snapshots[i - 1].step, `ListSnapshots is not ordered by step: ${snapshots.map((s) => s.step)}`);
  const full = [];
  for (const s of [snapshots[0], snapshots.at(-1)]) {
    check(s.name === `${name}/snapshots/${s.step}`, `snapshot name ${s.name} is not ${name}/snapshots/${s.step}`);
    const snapshot = await unary(client, 'GetSnapshot', { name: s.name, view: 'SNAPSHOT_VIEW_FULL' });
    const images = decodeFloat32(snapshot.images, `${s.name} images`);
    check(images.shape.length === 4 && images.shape.every((d) => d > 0), `${s.name} images have shape [${images.shape}], not N x C x H x W`);
    check(snapshot.classes.length === images.shape[0], `${s.name}: ${snapshot.classes.length} classes for ${images.shape[0]} images`);
    const labels = decodeFloat32(snapshot.labels, `${s.name} labels`);
    check(labels.shape.length === 2 && labels.shape[0] === images.shape[0], `${s.name} labels have shape [${labels.shape}]`);
    full.push(images);
  }
  check(full[0].shape.join() === full[1].shape.join(), `first and last snapshots differ in shape: [${full[0].shape}] vs [${full[1].shape}]`);
  check(full[0].values.some((v, i) => v !== full[1].values[i]), `the first (step ${snapshots[0].step}) and last (step ${snapshots.at(-1).step}) snapshots hold the same images`);
  console.log(`${snapshots.length} snapshots, steps ${snapshots[0].step}..${snapshots.at(-1).step}, images [${full[0].shape}]`);

  // 6. Export the first snapshot as NPZ: a zip file, named and sized by its first chunk.
  const chunks = [];
  await stream(client, 'ExportRun', { name, format: 'EXPORT_FORMAT_NPZ', step: snapshots[0].step }, (chunk) => {
    chunks.push(chunk);
  });
  check(chunks.length > 0, 'ExportRun sent no chunks');
  const { fileName, totalBytes } = chunks[0];
  check(fileName && fileName.endsWith('.npz'), `ExportRun's first chunk names the file '${fileName}', not *.npz`);
  const bytes = Buffer.concat(chunks.map((c) => c.data));
  check(totalBytes > 0 && bytes.length === totalBytes, `ExportRun sent ${bytes.length} bytes, its first chunk announced ${totalBytes}`);
  check(bytes.subarray(0, 2).toString('latin1') === 'PK', 'the NPZ export does not start with the zip magic "PK"');

  client.close();
  console.log(`node-client ok runs=${seen.size} snapshots=${snapshots.length} export_bytes=${bytes.length}`);
}

main().catch((error) => {
  console.error(`node-client FAILED: ${describe(error)}`);
  process.exit(1);
});
