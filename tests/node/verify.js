#!/usr/bin/env node
// An independent PASETO v3.public verifier (npm `paseto`, not pyseto) for the test suite.
//
// One-shot:  node verify.js < request.json
//   stdin:  {"token": "v3.public....", "public_pem": "-----BEGIN PUBLIC KEY-----..."}
//           (public_pem: SubjectPublicKeyInfo of the P-384 key)
//   stdout: {"payload": {...}, "payload_raw": "...", "footer": "..." | null}
//   On any failure: a message on stderr and exit status 1.
// Server:    node verify.js --lines
//   one request per stdin line, one answer per stdout line:
//   {"ok": true, "payload": ..., "payload_raw": ..., "footer": ...} or {"ok": false, "error": "..."}
//   (saves node's ~90 ms start-up per token; tests/envtools.py NodeVerifier drives it).
//
// Only the signature, the payload and the footer are checked. The implicit assertion is the
// empty string (no `assertion` option). `buffer: true` makes paseto hand back the raw payload
// bytes without running its claim validation (iat/exp/nbf clock checks, ISO-8601 parsing):
// cargo's `iat` ("2026-11-22T02:20:56.477768694Z", nanoseconds) is not paseto's business here.
// The payload must still be a JSON object, as PASETO requires; we check that ourselves.
'use strict'

const { createPublicKey } = require('crypto')
const readline = require('readline')
const { V3 } = require('paseto')

const utf8 = new TextDecoder('utf-8', { fatal: true })

class Rejected extends Error {}

async function verifyOne(text) {
  let input
  try {
    input = JSON.parse(text)
  } catch (e) {
    throw new Rejected(`request is not JSON: ${e.message}`)
  }
  const { token, public_pem: publicPem } = input || {}
  if (typeof token !== 'string') throw new Rejected('"token" must be a string')
  if (typeof publicPem !== 'string') throw new Rejected('"public_pem" must be a string')

  let key
  try {
    key = createPublicKey({ key: publicPem, format: 'pem' })
  } catch (e) {
    throw new Rejected(`bad public key: ${e.message}`)
  }

  let result
  try {
    result = await V3.verify(token, key, { complete: true, buffer: true })
  } catch (e) {
    throw new Rejected(`${e.code || e.name}: ${e.message}`)
  }

  let payloadRaw
  let payload
  try {
    payloadRaw = utf8.decode(result.payload)
    payload = JSON.parse(payloadRaw)
  } catch (e) {
    throw new Rejected(`payload is not UTF-8 JSON: ${e.message}`)
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new Rejected('payload is not a JSON object')
  }

  let footer = null
  if (result.footer !== undefined) {
    try {
      footer = utf8.decode(result.footer)
    } catch (e) {
      throw new Rejected(`footer is not UTF-8: ${e.message}`)
    }
  }
  return { payload, payload_raw: payloadRaw, footer }
}

function message(e) {
  return e instanceof Rejected ? e.message : e.stack || String(e)
}

async function oneShot() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  try {
    const out = await verifyOne(Buffer.concat(chunks).toString('utf8'))
    process.stdout.write(`${JSON.stringify(out)}\n`)
  } catch (e) {
    process.stderr.write(`verify.js: ${message(e)}\n`)
    process.exitCode = 1
  }
}

async function serve() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of rl) {
    if (!line.trim()) continue
    let answer
    try {
      answer = { ok: true, ...(await verifyOne(line)) }
    } catch (e) {
      answer = { ok: false, error: message(e) }
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`)
  }
}

const run = process.argv.includes('--lines') ? serve : oneShot
run().catch((e) => {
  process.stderr.write(`verify.js: ${e.stack || e}\n`)
  process.exit(1)
})
