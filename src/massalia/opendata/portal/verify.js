// Checking a certified file in the browser, step by step, as `massalia verify` does offline: the file's SHA-256,
// its leaf in the log, the audit path to the signed root (RFC 9162), the key id and the Ed25519 signature of the
// tree head (WebCrypto). Everything is fetched from the public endpoints; nothing is trusted from the page.

import { api, portalConfig } from "../../js/api.js";

const enc = new TextEncoder();

function b64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

function equal(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function canonical(entry) {
  // Keys sorted, no spaces: the entry holds only ids, hashes, numbers and an ASCII time.
  return "{" + Object.keys(entry).sort().map((k) => JSON.stringify(k) + ":" + JSON.stringify(entry[k])).join(",") + "}";
}

function signedBytes(sth) {
  const out = new Uint8Array(20 + 1 + 32 + 8 + 8 + 32);
  out.set(enc.encode("MASSALIA-LEDGER-STH\u0000"), 0);
  out[20] = 1;
  out.set(b64(sth.log_id), 21);
  const view = new DataView(out.buffer);
  view.setBigUint64(53, BigInt(sth.tree_size));
  view.setBigUint64(61, BigInt(sth.timestamp));
  out.set(b64(sth.root_hash), 69);
  return out;
}

function pemBody(pem) {
  return b64(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
}

/**
 * Verify a resource's file: returns [{step, ok, detail}] in order; stops at the first failure.
 * `fileUrl` is the resource's download address (same origin).
 */
export async function verifyResource(resourceId, fileUrl) {
  const steps = [];
  const add = (step, ok, detail = "") => {
    steps.push({ step, ok, detail });
    return ok;
  };
  const proof = await api("GET", `/opendata/certification/proof/${encodeURIComponent(resourceId)}`);
  const pem = await (await fetch(`${portalConfig().api}/opendata/certification/public-key`, { credentials: "same-origin" })).text();
  const file = new Uint8Array(await (await fetch(fileUrl, { credentials: "same-origin" })).arrayBuffer());
  const { entry, inclusion, checkpoint: sth } = proof;
  const digest = hex(await sha256(file));
  if (!add("hash", digest === entry.resource_sha256, digest)) return steps;
  let node = await sha256(new Uint8Array([0]), enc.encode(canonical(entry)));
  add("leaf", inclusion.tree_size === sth.tree_size && inclusion.leaf_index < sth.tree_size, hex(node));
  let fn = inclusion.leaf_index;
  let sn = inclusion.tree_size - 1;
  for (const sibling of inclusion.audit_path.map(b64)) {
    if (sn === 0) return add("inclusion", false, "path too long") && steps;
    if (fn % 2 === 1 || fn === sn) {
      node = await sha256(new Uint8Array([1]), sibling, node);
      while (fn % 2 === 0 && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else node = await sha256(new Uint8Array([1]), node, sibling);
    fn >>= 1;
    sn >>= 1;
  }
  if (!add("inclusion", sn === 0 && equal(node, b64(sth.root_hash)), `${inclusion.leaf_index} / ${sth.tree_size}`)) return steps;
  const der = pemBody(pem);
  if (!add("key", equal(await sha256(der), b64(sth.log_id)), hex(b64(sth.log_id)).slice(0, 16))) return steps;
  let key;
  try {
    key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    add("signature", null, "unsupported");
    return steps;
  }
  add("signature", await crypto.subtle.verify({ name: "Ed25519" }, key, b64(sth.signature), signedBytes(sth)), new Date(sth.timestamp).toISOString());
  return steps;
}
