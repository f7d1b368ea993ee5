// Decrypting an export's payload: offered on an export's page when the
// payload is encrypted and the archive says the session's roles may
// decrypt its classification (mayDecrypt). The action asks why (a case id
// or a reason: one is required), asks the API for the plaintext
// (payload?decrypt=1, never cached), checks it against the digest the API
// names and hands it to the browser's downloads; the page keeps no copy.
// The API decides again and records the decryption, or its refusal, as a
// decrypt entry of the access log.

import * as api from "./api.js";
import { h } from "./ui.js";

// casePattern is what the API takes as a case id.
const casePattern = "[A-Za-z0-9._:\\/#\\-]{1,128}";
const maxReason = 256;

// hex is the lowercase hex of a buffer.
function hex(buf) {
  return Array.from(new Uint8Array(buf), b => b.toString(16).padStart(2, "0")).join("");
}

// filename is the name the API suggests (Content-Disposition), else
// fallback.
function filename(headers, fallback) {
  const m = /filename="([^"\/\\]{1,200})"/.exec(headers.get("Content-Disposition") || "");
  return m ? m[1] : fallback;
}

// save hands a blob to the browser's downloads and forgets it.
function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
}

// decryptAction returns the Decrypt button and its form (hidden until the
// button is pressed). path is the export's API path; done is called after
// each attempt (the access history then shows it).
export function decryptAction(path, id, done) {
  const msg = h("p", { id: "decrypt-msg", role: "status" });
  const caseIn = h("input", { name: "case", id: "decrypt-case", autocomplete: "off", maxlength: "128", placeholder: "CASE-2026-17" });
  const reasonIn = h("input", { name: "reason", id: "decrypt-reason", autocomplete: "off", maxlength: String(maxReason), placeholder: "why you need the plaintext" });
  const submit = h("button", { class: "primary", type: "submit", id: "decrypt-go" }, "Decrypt and download");
  const cancel = h("button", { type: "button", id: "decrypt-cancel" }, "Cancel");
  const form = h("form", { class: "card decrypt", id: "decrypt-form", hidden: true },
    h("p", { class: "hint" }, "The payload is encrypted. Decrypting it is a custody event: the archive records who, when, from where and why in its signed access log before it sends the plaintext. Give a case id or a reason (one is required)."),
    h("div", { class: "filters" },
      h("label", {}, "Case id", caseIn),
      h("label", {}, "Reason", reasonIn)),
    h("span", { class: "actions" }, submit, cancel),
    msg);
  const button = h("button", { type: "button", class: "primary", id: "decrypt" }, "Decrypt payload…");
  const say = (text, cls) => { msg.textContent = text; msg.className = cls || ""; };
  button.addEventListener("click", () => { form.hidden = false; button.hidden = true; say(""); caseIn.focus(); });
  cancel.addEventListener("click", () => { form.hidden = true; button.hidden = false; say(""); });
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const c = caseIn.value.trim(), reason = reasonIn.value.trim();
    if (!c && !reason) { say("Say why: give a case id or a reason.", "bad"); return; }
    if (c && !new RegExp("^" + casePattern + "$").test(c)) { say("A case id is letters, digits and ._:/#- (at most 128).", "bad"); return; }
    submit.disabled = true;
    say("Decrypting…", "muted");
    try {
      const { blob, headers } = await api.fetchFile(path + "/payload", { decrypt: 1, case: c, reason });
      const digest = headers.get("X-Edgeseal-Digest") || "";
      if (headers.get("X-Edgeseal-Decrypted") !== "1") throw new Error("the archive did not decrypt the payload");
      // The archive checked the plaintext against the record; check what
      // arrived too (crypto.subtle exists in secure contexts: HTTPS, loopback).
      let checked = false;
      if (window.crypto && crypto.subtle) {
        const got = "sha256:" + hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
        if (got !== digest) throw new Error("the plaintext is " + got + ", not " + digest + " as the record says: not saved");
        checked = true;
      }
      const name = filename(headers, id);
      save(blob, name);
      say("Decrypted and saved as " + name + " (" + blob.size + " bytes, " + digest + (checked ? ", checked" : "") + "). The decryption is in the access log.", "ok");
      form.reset();
    } catch (e) {
      say(e.status === 403 ? "Refused: " + e.message + ". The refusal is in the access log."
        : e.status ? "The archive answered: " + e.message : "Not decrypted: " + e.message, "bad");
    } finally {
      submit.disabled = false;
      done();
    }
  });
  return { button, form };
}
