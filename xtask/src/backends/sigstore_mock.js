// A local Sigstore for wharf's tests: Fulcio (with a CT log, so certificates carry an
// embedded SCT) and Rekor v1 on one loopback HTTP server. Fulcio and the CT log are
// @sigstore/mock's (the sigstore-js project's own fakes); Rekor is a small in-memory
// RFC 6962 log here, because @sigstore/mock's logs every entry alone in a tree of one
// (index 0, no proof hashes: see `createLog`). `cargo xtask backends up` starts it as
// `sigstore-mock`:
//
//     NODE_PATH=<npm dir>/node_modules node sigstore_mock.js --port PORT
//
// Routes (BASE = http://127.0.0.1:PORT):
//   POST /api/v2/signingCert       Fulcio v2: a certificate for the key in the request
//   POST /api/v1/signingCert       Fulcio's legacy API (cosign 2): the same certificate,
//                                  answered as a PEM chain
//   POST /api/v1/log/entries       Rekor v1: log a hashedrekord or dsse 0.0.1 entry
//   GET  /api/v1/log/entries/UUID  Rekor v1: a logged entry, proven against the tree now
//   GET  /api/v1/log/publicKey     Rekor v1: the log's public key (PEM)
//   GET  /trusted_root.json        a Sigstore TrustedRoot naming this server's CA and logs
//   GET  /client_trust_config.json a ClientTrustConfig (sigstore-python's --trust-config)
//   GET  /health                   200 "ok"
//   POST /faults                   {"path","status","count"[,"served"]}: the next `count`
//                                  requests to `path` answer `status` ({"code","message"})
//                                  instead — or, with "served": true, are served and then
//                                  answered `status` (the answer lost after the work)
//   GET  /requests                 {path: requests received, faulted ones included}
//
// Requests are checked where real Fulcio and Rekor check them cheaply (Fulcio's proof of
// possession, the DSSE envelope's signatures), and Rekor logs the bodies real Rekor logs
// (see `canonicalEntry`). Keys are generated at start: everything signed by one process
// verifies against that process's trust root, and nothing survives a restart.
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const { fulcioHandler, initializeCA, initializeCTLog } = require('@sigstore/mock');

// The operator named in the trust root and signing config.
const OPERATOR = 'wharf-test';
// Largest request body read.
const MAX_BODY = 16 << 20;
// Rekor's tree ID, made up (the checkpoints' origin is `<host> - <tree id>`).
const TREE_ID = 1_193_050_959_916_656_506n;
// Entries of earlier (inactive) shards: an entry's `logIndex` is this plus its index in
// the tree, as on rekor.sigstore.dev, where the two differ. Verifiers must prove inclusion
// with the proof's `logIndex` and check the SET with the entry's.
const INACTIVE_SHARDS_SIZE = 1_000_000;
// Leaves logged before the first entry, so that no entry sits at index 0 and even the
// first one has proof hashes on more than one level (protobuf JSON omits a zero
// `logIndex` and empty `hashes`, and sigstore-python refuses a proof without them).
const SEED_LEAVES = 5;

function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node sigstore_mock.js --port PORT');
    process.exit(2);
  }
  start(port).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

async function start(port) {
  // Bind first: with `--port 0` the base URL (which the checkpoints and trust root name)
  // is only known once listening.
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  // The trust root's validity starts a minute before now, so that clock skew between the
  // certificates' notBefore (second precision) and the logs' times never falls outside it.
  const validFrom = new Date(Date.now() - 60_000).toISOString();

  // @sigstore/mock's initialize* take Node KeyObject pairs (its own generateKeyPair is
  // this call). One key each for the CA, the CT log and Rekor, as real deployments have.
  const p256 = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ctLog = await initializeCTLog(p256());
  const ca = await initializeCA(p256(), ctLog);
  const fulcio = fulcioHandler(ca);
  const rekor = createLog(base, p256());

  const trustedRoot = trustedRootJSON(base, validFrom, ca, ctLog, rekor.spki);
  const trustConfig = clientTrustConfigJSON(base, validFrom, trustedRoot);
  const rekorKeyPem = rekor.publicKey.export({ type: 'spki', format: 'pem' });

  const faults = new Map(); // path → { status, count }
  const counts = {}; // path → requests received

  const routes = {
    'POST /api/v2/signingCert': async (rawBody, headers) => {
      // Fulcio takes the token in the body's `credentials` or as `Authorization: Bearer`
      // (sigstore-python sends the header and a CSR); the mock reads only the body.
      const body = withBearerToken(rawBody, headers);
      const refused = checkFulcioRequest(body);
      if (refused) return refused;
      const answer = await fulcio.fn(body);
      // @sigstore/mock answers 201; Fulcio's v2 API (grpc-gateway, pkg/server/
      // grpc_server.go sets no other code) answers 200, and sigstore-go (cosign 3)
      // accepts only that.
      return answer.statusCode === 201
        ? { ...rewrapFulcioChain(answer), statusCode: 200 }
        : textError(answer);
    },
    // Fulcio's legacy API, which cosign 2 calls (fulcio pkg/server/legacy_server.go): the
    // request {publicKey: {content: base64 of the PEM key, algorithm}, signedEmailAddress:
    // base64 of the proof of possession} or {certificateSigningRequest}, the token as
    // `Authorization: Bearer`, is turned into the v2 request it stands for; the answer is
    // 201 with the chain (leaf first) as application/pem-certificate-chain, the SCT
    // embedded in the certificate (so no `SCT` header, as Fulcio answers then).
    'POST /api/v1/signingCert': async (rawBody, headers) => {
      let legacy;
      try {
        legacy = JSON.parse(rawBody);
      } catch (err) {
        return jsonError(400, `fulcio: the request is not JSON: ${err.message}`);
      }
      const v2 = {};
      if (legacy?.certificateSigningRequest) {
        v2.certificateSigningRequest = legacy.certificateSigningRequest;
      } else if (legacy?.publicKey?.content) {
        v2.publicKeyRequest = {
          publicKey: {
            algorithm: legacy.publicKey.algorithm,
            content: Buffer.from(legacy.publicKey.content, 'base64').toString('utf8'),
          },
          proofOfPossession: legacy.signedEmailAddress,
        };
      } else {
        return jsonError(400, 'fulcio: public key not provided');
      }
      const body = withBearerToken(JSON.stringify(v2), headers);
      const refused = checkFulcioRequest(body);
      if (refused) return refused;
      const answer = await fulcio.fn(body);
      if (answer.statusCode !== 201) return textError(answer);
      const { certificates } = JSON.parse(rewrapFulcioChain(answer).response)
        .signedCertificateEmbeddedSct.chain;
      return {
        statusCode: 201,
        response: certificates.map((pem) => pem.trim()).join('\n'),
        contentType: 'application/pem-certificate-chain',
      };
    },
    'POST /api/v1/log/entries': async (body) => {
      let entry;
      try {
        entry = canonicalEntry(JSON.parse(body));
      } catch (err) {
        return jsonError(400, err.message);
      }
      const { uuid, existing } = rekor.append(Buffer.from(canonicalize(entry)));
      // Rekor's ETag is the entry's UUID, unquoted (pkg/api/entries.go `WithETag(uuid)`):
      // sigstore-go (cosign 3) looks the new entry up in the answer by it.
      const location = { Location: `/api/v1/log/entries/${uuid}`, ETag: uuid };
      if (existing) {
        // Rekor refuses a body it already holds, naming the entry it has.
        const message = `an equivalent entry already exists in the transparency log with UUID ${uuid}`;
        return { ...jsonError(409, message), headers: location };
      }
      return { ...json(201, rekor.entry(uuid)), headers: location };
    },
    'GET /api/v1/log/publicKey': async () => ({
      statusCode: 200,
      response: rekorKeyPem,
      contentType: 'application/x-pem-file', // as Rekor serves it
    }),
    'GET /trusted_root.json': async () => json(200, trustedRoot),
    'GET /client_trust_config.json': async () => json(200, trustConfig),
    'GET /health': async () => ({ statusCode: 200, response: 'ok', contentType: 'text/plain' }),
    'POST /faults': async (body) => {
      let fault;
      try {
        fault = JSON.parse(body);
      } catch (err) {
        return jsonError(400, `faults: ${err.message}`);
      }
      const { path, status, count, served } = fault ?? {};
      if (typeof path !== 'string' || !path.startsWith('/') || path === '/faults') {
        return jsonError(400, 'faults: `path` must be an absolute path other than /faults');
      }
      if (!Number.isInteger(status) || status < 100 || status > 599) {
        return jsonError(400, 'faults: `status` must be an HTTP status code');
      }
      if (!Number.isInteger(count) || count < 0) {
        return jsonError(400, 'faults: `count` must be a non-negative integer');
      }
      if (count === 0) faults.delete(path);
      else faults.set(path, { status, count, served: served === true });
      return json(200, Object.fromEntries(faults));
    },
    'GET /requests': async () => json(200, counts),
  };
  // GET /api/v1/log/entries/ID: ID is the 80-hex UUID (tree ID, leaf hash) or the leaf hash.
  const entryPath = /^\/api\/v1\/log\/entries\/([0-9a-f]{64}|[0-9a-f]{80})$/;
  const findRoute = (method, path) => {
    const id = method === 'GET' && entryPath.exec(path)?.[1];
    if (!id) return routes[`${method} ${path}`];
    return async () => {
      const entry = rekor.entry(id);
      return entry ? json(200, entry) : jsonError(404, `no entry ${id}`);
    };
  };

  server.on('request', (req, res) => {
    const path = new URL(req.url, base).pathname;
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        send(res, jsonError(413, `request body over ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', async () => {
      counts[path] = (counts[path] ?? 0) + 1;
      const fault = faults.get(path);
      if (fault) {
        if (--fault.count === 0) faults.delete(path);
        if (fault.served) {
          const route = findRoute(req.method, path);
          if (route) await route(Buffer.concat(chunks).toString('utf8'), req.headers).catch(() => {});
        }
        // Rekor's errors are {"code": <HTTP status>, "message"}; Fulcio's (grpc-gateway)
        // carry a gRPC code instead, which no client reads. One shape for both.
        return send(res, jsonError(fault.status, `injected fault for ${path}`));
      }
      const route = findRoute(req.method, path);
      if (!route) {
        return send(res, jsonError(404, `no route for ${req.method} ${path}`));
      }
      try {
        send(res, await route(Buffer.concat(chunks).toString('utf8'), req.headers));
      } catch (err) {
        console.error(`${req.method} ${path}:`, err);
        send(res, jsonError(500, String(err?.message ?? err)));
      }
    });
  });
  console.log(`sigstore mock listening on ${base}`);
}

// Writes a handler's answer ({statusCode, response, contentType}, @sigstore/mock's shape).
// `headers` are extra response headers.
function send(res, { statusCode, response, contentType, headers }) {
  if (res.headersSent) return;
  res.writeHead(statusCode, {
    ...headers,
    'Content-Type': contentType || 'text/plain',
    'Content-Length': Buffer.byteLength(response),
  });
  res.end(response);
}

function json(statusCode, value) {
  return { statusCode, response: JSON.stringify(value), contentType: 'application/json' };
}

function jsonError(code, message) {
  return json(code, { code, message });
}

// @sigstore/mock answers errors as plain text; real Fulcio and Rekor answer JSON.
function textError({ statusCode, response }) {
  return jsonError(statusCode, String(response));
}

// ---- Fulcio -------------------------------------------------------------------------

// Real Fulcio checks `publicKeyRequest.proofOfPossession`: the requester's signature
// (SHA-256) over the token's subject — its `email` for email issuers, else `sub` (the
// rule sigstore-js's `extractJWTSubject` follows). @sigstore/mock does not; this does.
// Like the mock, it reads the token's claims without checking its signature, audience or
// expiry. Returns the error answer, or nothing. CSR requests pass through.
function checkFulcioRequest(body) {
  let request;
  try {
    request = JSON.parse(body);
  } catch (err) {
    return jsonError(400, `fulcio: the request is not JSON: ${err.message}`);
  }
  let claims;
  try {
    const token = request?.credentials?.oidcIdentityToken;
    claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  } catch {
    return jsonError(401, 'fulcio: credentials.oidcIdentityToken is not a JWT');
  }
  const keyRequest = request?.publicKeyRequest;
  if (!keyRequest) return undefined;
  const emailIssuers = ['https://accounts.google.com', 'https://oauth2.sigstore.dev/auth'];
  const subject = String(emailIssuers.includes(claims.iss) ? claims.email : claims.sub);
  try {
    const key = crypto.createPublicKey(keyRequest.publicKey.content);
    const proof = Buffer.from(keyRequest.proofOfPossession, 'base64');
    if (crypto.verify('sha256', Buffer.from(subject), key, proof)) return undefined;
  } catch (err) {
    return jsonError(400, `fulcio: cannot check the proof of possession: ${err.message}`);
  }
  return jsonError(
    400,
    `fulcio: proofOfPossession is not a signature over the token's subject ${JSON.stringify(subject)}`,
  );
}

// The request with the `Authorization: Bearer` token moved into `credentials`, where the
// mock looks for it; a body that already has credentials, or is not JSON, is left as is.
// Also: Fulcio's `certificateSigningRequest` is protobuf `bytes` (base64 of the PEM CSR, as
// sigstore-python sends it); the mock parses the field as PEM itself, so it gets the PEM.
function withBearerToken(body, headers) {
  const bearer = /^Bearer\s+(\S+)$/i.exec(headers?.authorization ?? '')?.[1];
  try {
    const request = JSON.parse(body);
    if (bearer && !request?.credentials?.oidcIdentityToken) {
      request.credentials = { oidcIdentityToken: bearer };
    }
    const csr = request?.certificateSigningRequest;
    if (typeof csr === 'string' && !csr.startsWith('-----BEGIN')) {
      const pem = Buffer.from(csr, 'base64').toString('utf8');
      if (pem.startsWith('-----BEGIN')) request.certificateSigningRequest = pem;
    }
    return JSON.stringify(request);
  } catch {
    return body;
  }
}

// @sigstore/mock writes each certificate's base64 on one line; Fulcio (Go's pem.Encode)
// wraps it at 64 columns. Same certificates, written as Fulcio writes them:
// {"signedCertificateEmbeddedSct":{"chain":{"certificates":[leaf PEM, root PEM]}}}.
function rewrapFulcioChain(answer) {
  const body = JSON.parse(answer.response);
  const chain = body.signedCertificateEmbeddedSct.chain;
  chain.certificates = chain.certificates.map((pem) => new crypto.X509Certificate(pem).toString());
  return { ...answer, response: JSON.stringify(body) };
}

// ---- Rekor --------------------------------------------------------------------------

// Rekor v1's log: an in-memory RFC 6962 Merkle tree of the entries' canonical bodies,
// signed with `keyPair`. @sigstore/mock's log (rekor/tlog.js) puts every entry alone in a
// tree of size 1 (proof `logIndex` 0, no `hashes`, root = the leaf hash), which proves no
// Merkle path code and which sigstore-python cannot read back from a bundle written as
// protobuf JSON (see SEED_LEAVES); this one grows like Rekor's.
// 
// `entry(id)` answers as Rekor does (openapi.yaml `LogEntry`): {UUID: {body (base64),
// integratedTime, logID (hex), logIndex, verification: {inclusionProof: {checkpoint,
// hashes (hex, leaf to root), logIndex, rootHash (hex), treeSize}, signedEntryTimestamp
// (base64)}}}, the proof against the tree as it is now.
function createLog(base, keyPair) {
  const host = new URL(base).host;
  const spki = keyPair.publicKey.export({ type: 'spki', format: 'der' });
  const logID = sha256(spki);
  const treeId = TREE_ID.toString(16).padStart(16, '0');
  const leaves = []; // leaf hashes, in log order
  const entries = new Map(); // leaf hash (hex) → { body, index, integratedTime }
  for (let i = 0; i < SEED_LEAVES; i++) {
    leaves.push(leafHash(Buffer.from(`wharf sigstore mock: seed leaf ${i}`)));
  }
  const sign = (data) => crypto.sign('sha256', Buffer.from(data), keyPair.privateKey);

  return {
    spki,
    publicKey: keyPair.publicKey,
    // Logs `body` (canonical JSON bytes) unless the log holds it; its UUID either way.
    append(body) {
      const leaf = leafHash(body);
      const uuid = treeId + leaf.toString('hex');
      if (entries.has(leaf.toString('hex'))) return { uuid, existing: true };
      const integratedTime = Math.floor(Date.now() / 1000);
      entries.set(leaf.toString('hex'), { body, index: leaves.length, integratedTime });
      leaves.push(leaf);
      return { uuid, existing: false };
    },
    // The logged entry `id` (UUID or leaf hash), or nothing.
    entry(id) {
      const leaf = id.slice(-64);
      const found = entries.get(leaf);
      if (!found) return undefined;
      const { body, index, integratedTime } = found;
      const logIndex = INACTIVE_SHARDS_SIZE + index;
      const treeSize = leaves.length;
      const rootHash = treeHash(leaves);
      // The SET: Rekor's signature over the JCS of these four fields (pkg/api/entries.go).
      const set = sign(
        canonicalize({
          body: body.toString('base64'),
          integratedTime,
          logID: logID.toString('hex'),
          logIndex,
        }),
      );
      // The checkpoint: a signed note (origin, size, root, Rekor's timestamp line), its
      // signature line `— <host> base64(first 4 bytes of the log ID ‖ signature)`.
      const note = [
        `${host} - ${TREE_ID}`,
        `${treeSize}`,
        rootHash.toString('base64'),
        `Timestamp: ${BigInt(Date.now()) * 1_000_000n}`,
        '',
      ].join('\n');
      const keyHint = logID.subarray(0, 4);
      const signature = Buffer.concat([keyHint, sign(note)]).toString('base64');
      const checkpoint = `${note}\n\u2014 ${host} ${signature}\n`;
      return {
        [treeId + leaf]: {
          body: body.toString('base64'),
          integratedTime,
          logID: logID.toString('hex'),
          logIndex,
          verification: {
            inclusionProof: {
              checkpoint,
              hashes: auditPath(index, leaves).map((hash) => hash.toString('hex')),
              logIndex: index,
              rootHash: rootHash.toString('hex'),
              treeSize,
            },
            signedEntryTimestamp: set.toString('base64'),
          },
        },
      };
    },
  };
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest();
// RFC 6962 §2.1: a leaf's hash, and an inner node's.
const leafHash = (data) => sha256(Buffer.concat([Buffer.from([0]), data]));
const nodeHash = (left, right) => sha256(Buffer.concat([Buffer.from([1]), left, right]));
// The largest power of two below `n` (n > 1): where RFC 6962 splits a tree of `n` leaves.
const split = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

// RFC 6962 §2.1 MTH over (a non-empty list of) leaf hashes.
function treeHash(hashes) {
  if (hashes.length === 1) return hashes[0];
  const k = split(hashes.length);
  return nodeHash(treeHash(hashes.slice(0, k)), treeHash(hashes.slice(k)));
}

// RFC 6962 §2.1.1 PATH(m, D[n]): the inclusion proof of leaf `m`, leaf level first.
function auditPath(m, hashes) {
  if (hashes.length <= 1) return [];
  const k = split(hashes.length);
  return m < k
    ? [...auditPath(m, hashes.slice(0, k)), treeHash(hashes.slice(k))]
    : [...auditPath(m - k, hashes.slice(k)), treeHash(hashes.slice(0, k))];
}

// RFC 8785 (JCS) for JSON values: sorted keys (UTF-16 order, JS's default sort), no
// whitespace, ECMAScript number and string serialisation.
function canonicalize(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalize(value[key])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

// What real Rekor logs for a proposed entry (its `Canonicalize`; the log then applies
// JCS). @sigstore/mock's Rekor logs the proposed entry as sent, which verifiers reject for
// dsse (they check the server-side `signatures`/`payloadHash`, absent from a proposal)
// and, when the key PEM is not 64-column, for hashedrekord too (sigstore-python compares
// the body with the certificate re-encoded).
function canonicalEntry(entry) {
  const { kind, apiVersion, spec } = entry ?? {};
  if (kind === 'hashedrekord' && apiVersion === '0.0.1') {
    // rekor pkg/types/hashedrekord/v0.0.1: data.hash as sent, the key re-encoded as PEM.
    const hash = spec?.data?.hash;
    if (hash?.algorithm !== 'sha256' || !/^[0-9a-f]{64}$/.test(hash?.value ?? '')) {
      throw new Error('hashedrekord: spec.data.hash must be a lowercase hex sha256');
    }
    const signature = spec?.signature?.content;
    if (typeof signature !== 'string' || signature === '') {
      throw new Error('hashedrekord: spec.signature.content is missing');
    }
    const key = canonicalKey(spec?.signature?.publicKey?.content);
    return {
      apiVersion,
      kind,
      spec: {
        data: { hash: { algorithm: 'sha256', value: hash.value } },
        signature: { content: signature, publicKey: { content: key.b64 } },
      },
    };
  }
  if (kind === 'dsse' && apiVersion === '0.0.1') {
    // rekor pkg/types/dsse/v0.0.1: every envelope signature must verify with one of the
    // proposed verifiers; the log keeps the payload's and the envelope string's SHA-256
    // and the signatures (sorted) with their verifier, never the envelope itself.
    const proposed = spec?.proposedContent;
    if (typeof proposed?.envelope !== 'string') {
      throw new Error('dsse: spec.proposedContent.envelope must be the envelope as a string');
    }
    const envelope = JSON.parse(proposed.envelope);
    const payload = Buffer.from(envelope.payload ?? '', 'base64');
    const pae = preAuthEncoding(String(envelope.payloadType ?? ''), payload);
    const verifiers = (proposed.verifiers ?? []).map(canonicalKey);
    if (verifiers.length === 0) throw new Error('dsse: spec.proposedContent.verifiers is empty');
    const sigs = envelope.signatures ?? [];
    if (sigs.length === 0) throw new Error('dsse: the envelope has no signatures');
    const signatures = sigs.map(({ sig }) => {
      const verifier = verifiers.find((v) =>
        crypto.verify('sha256', pae, v.key, Buffer.from(String(sig), 'base64')),
      );
      if (!verifier) throw new Error('dsse: all signatures must have a key that verifies it');
      return { signature: sig, verifier: verifier.b64 };
    });
    signatures.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
    const hex = (bytes) => sha256(bytes).toString('hex');
    return {
      apiVersion,
      kind,
      spec: {
        envelopeHash: { algorithm: 'sha256', value: hex(Buffer.from(proposed.envelope)) },
        payloadHash: { algorithm: 'sha256', value: hex(payload) },
        signatures,
      },
    };
  }
  // Other kinds (intoto, rekord, …) are logged as proposed, as @sigstore/mock does.
  const wellFormed = typeof kind === 'string' && typeof apiVersion === 'string';
  if (!wellFormed || !spec || typeof spec !== 'object') {
    throw new Error('a proposed entry needs `kind`, `apiVersion` and `spec`');
  }
  return entry;
}

// A base64 PEM (certificate or public key) from a proposed entry, re-encoded as Rekor's
// `CanonicalValue` does (PEM, 64 columns): `{b64, key}`.
function canonicalKey(b64) {
  const pem = Buffer.from(String(b64 ?? ''), 'base64').toString('utf8');
  let canonical;
  let key;
  if (pem.includes('-----BEGIN CERTIFICATE-----')) {
    const cert = new crypto.X509Certificate(pem);
    canonical = cert.toString();
    key = cert.publicKey;
  } else if (pem.includes('-----BEGIN PUBLIC KEY-----')) {
    key = crypto.createPublicKey(pem);
    canonical = key.export({ type: 'spki', format: 'pem' });
  } else {
    throw new Error('the public key must be a base64 PEM certificate or public key');
  }
  return { b64: Buffer.from(canonical).toString('base64'), key };
}

// DSSE's PAE: "DSSEv1" SP len(type) SP type SP len(body) SP body.
function preAuthEncoding(type, body) {
  const typeBytes = Buffer.from(type);
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${typeBytes.length} `),
    typeBytes,
    Buffer.from(` ${body.length} `),
    body,
  ]);
}

// ---- Trust material -----------------------------------------------------------------

// A Sigstore TrustedRoot (protobuf-specs sigstore_trustroot.proto, protobuf JSON: bytes
// as base64, camelCase), with the shapes of @sigstore/mock's dist/trust-root.js.
function trustedRootJSON(base, validFrom, ca, ctLog, tlogSpki) {
  const b64 = (bytes) => Buffer.from(bytes).toString('base64');
  const log = (spki, keyId) => ({
    baseUrl: base,
    hashAlgorithm: 'SHA2_256',
    publicKey: {
      rawBytes: b64(spki),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: { start: validFrom },
    },
    logId: { keyId: b64(keyId) },
    operator: OPERATOR,
  });
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [log(tlogSpki, sha256(tlogSpki))],
    certificateAuthorities: [
      {
        // initializeCA's root: CN=sigstore,O=sigstore.mock, self-signed, valid a year.
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: base,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start: validFrom },
        operator: OPERATOR,
      },
    ],
    // The CT log's logID is the SHA-256 of its SPKI (initializeCTLog).
    ctlogs: [log(ctLog.publicKey, ctLog.logID)],
    timestampAuthorities: [],
  };
}

// sigstore-python's `--trust-config`: a ClientTrustConfig (sigstore_trustroot.proto) with
// the trusted root and a v0.2 SigningConfig naming this server as Fulcio and Rekor v1.
function clientTrustConfigJSON(base, validFrom, trustedRoot) {
  const service = {
    url: base,
    majorApiVersion: 1,
    validFor: { start: validFrom },
    operator: OPERATOR,
  };
  return {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot,
    signingConfig: {
      mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
      caUrls: [service],
      oidcUrls: [],
      rekorTlogUrls: [service],
      rekorTlogConfig: { selector: 'ANY' },
      tsaUrls: [],
      tsaConfig: { selector: 'ANY' },
    },
  };
}

main();
