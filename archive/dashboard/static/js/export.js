// One export: its lineage from the no-code app to the storage object, each
// hop with its proof status, the record, the downloads and who read it.

import * as api from "./api.js";
import { h, mount, fmtTime, short, statusBadge, errorText } from "./ui.js";
import { accessTable } from "./access.js";
import { searchHref } from "./exports.js";
import { decryptAction } from "./decrypt.js";

// decodeReceipt reads the payload of the DSSE envelope the archive signed.
function decodeReceipt(env) {
  try {
    const bin = atob(env.payload);
    const bytes = Uint8Array.from(bin, c => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return null;
  }
}

// hops are the steps of the lineage with their proof status:
// verified, refused or missing.
function hops(e, receipt) {
  const accepted = e.status === "accepted";
  const archiveRefused = e.status === "refused" && e.refusedBy === "archive";
  const inBundle = accepted ? "verified" : archiveRefused ? "refused" : e.bundle ? "verified" : "missing";
  const signed = accepted ? "in the device-signed record; the archive verified the bundle" : archiveRefused ? "the archive refused the bundle" : "in the device-signed record";
  const r = receipt && receipt.bundleDigest === e.bundle && receipt.device === e.device && receipt.logIndex === e.logIndex;
  return [
    { hop: "No-code app", what: e.app || "?", state: inBundle, proof: signed },
    { hop: "Principal", what: e.principal || "?", state: inBundle, proof: "authenticated by the agent's token check; " + (accepted ? "sealed" : "recorded") },
    { hop: "Workflow", what: e.workflow || "?", state: e.status === "refused" && e.refusedBy === "agent" ? "refused" : inBundle,
      proof: e.refusedBy === "agent" ? "refused by policy " + (e.policy || "").slice(0, 19) + "…: " + e.reason : "checked against policy " + (e.policy || "?").slice(0, 19) + "…" },
    { hop: "Agent journal", what: "record #" + e.seq + " on " + e.device, state: inBundle, proof: "hash-chained, in the device's Merkle tree" },
    { hop: "Sealed bundle", what: e.bundle ? e.bundle.slice(0, 19) + "…" : "none", title: e.bundle, state: inBundle,
      proof: accepted ? "TPM quote, counter and seal verified at acceptance" : archiveRefused ? "refused: " + e.reason : "sealed" },
    { hop: "Archive log", what: e.logIndex !== undefined ? "entry " + e.logIndex : "none", state: e.logIndex === undefined ? "missing" : r ? "verified" : "missing",
      proof: e.logIndex === undefined ? "not logged" : r ? "signed receipt names this bundle at this index" : "receipt not read" },
    { hop: "Storage object", what: e.object ? (e.object.length > 24 ? e.object.slice(0, 22) + "…" : e.object) : "none", state: e.object ? "verified" : "missing",
      title: e.object, proof: e.object ? "write-once until " + fmtTime(e.retainUntil) : "nothing stored" },
  ];
}

function lineage(list) {
  return h("ol", { class: "lineage", id: "lineage" }, list.map(x =>
    h("li", { class: x.state, dataset: { state: x.state } },
      h("div", { class: "hop" }, x.hop),
      h("div", { class: "what", title: x.title || x.what }, x.what),
      h("div", { class: "proof " + (x.state === "verified" ? "ok" : x.state === "refused" ? "bad" : "muted") },
        (x.state === "verified" ? "✔ " : x.state === "refused" ? "✘ " : "– ") + x.proof))));
}

export async function render(rest, config) {
  const [site, name, id] = rest;
  const device = site + "/" + name;
  mount(h("h1", {}, "Export ", id), h("p", { class: "loading" }, "Loading…"));
  const path = api.exportPath(device, id);
  let doc;
  try {
    doc = await api.get(path);
  } catch (e) {
    mount(h("h1", {}, "Export ", id), h("p", { class: "empty" }, errorText(e)));
    return;
  }
  const e = doc.entry;
  let receipt = null;
  if (e.bundle && e.logIndex !== undefined) {
    try { receipt = decodeReceipt(await api.get("/v1/bundles/" + e.bundle.replace("sha256:", "") + "/receipt")); } catch (err) { receipt = null; }
  }
  const actions = h("div", { class: "actions" });
  if (e.payload && e.status === "accepted") actions.appendChild(h("a", { class: "button", id: "dl-payload", href: path + "/payload", download: "" }, doc.encrypted ? "Download payload (encrypted)" : "Download payload"));
  if (e.object) actions.appendChild(h("a", { class: "button", id: "dl-bundle", href: "/v1/bundles/" + e.bundle.replace("sha256:", ""), download: "" }, "Download bundle"));
  if (receipt) actions.appendChild(h("a", { class: "button", id: "dl-receipt", href: "/v1/bundles/" + e.bundle.replace("sha256:", "") + "/receipt", download: "" }, "Download receipt"));
  if (config.packUrl && e.object) {
    const pack = config.packUrl.replace("{site}", encodeURIComponent(site)).replace("{name}", encodeURIComponent(name)).replace("{id}", encodeURIComponent(id));
    actions.appendChild(h("a", { class: "button primary", id: "dl-pack", href: pack, download: "" }, "Download evidence pack"));
  }
  if (e.bundle) actions.appendChild(h("a", { class: "button", href: searchHref({ bundle: e.bundle }) }, "Exports in this bundle"));
  actions.appendChild(h("a", { class: "button", href: "#/access?device=" + encodeURIComponent(device) }, "Reads of this device"));
  const history = h("div", { id: "export-access" }, h("p", { class: "loading" }, "Loading…"));
  const loadHistory = async () => {
    try {
      const page = await api.get("/v1/access", { device, export: id, limit: 100 });
      history.replaceChildren(accessTable("export-access-table", "access-" + id, page.items || []));
    } catch (err) {
      history.replaceChildren(h("p", { class: "empty" }, errorText(err)));
    }
  };
  // Decrypt: only for an encrypted payload the session's roles may
  // decrypt (the API decides again, and logs either way).
  let decrypt = null;
  if (doc.encrypted && doc.mayDecrypt && e.payload && e.status === "accepted") {
    decrypt = decryptAction(path, id, loadHistory);
    actions.prepend(decrypt.button);
  }
  if (doc.others) actions.appendChild(h("a", { class: "button", href: searchHref({ device, export: id }) }, doc.others + " more record(s) with this id"));

  const fields = [
    ["Status", statusBadge(e.status)], ["Refused by", e.refusedBy], ["Reason", e.reason],
    ["Device", e.device], ["Export id", e.export], ["Record", "#" + e.seq + " (" + e.type + ")"],
    ["App", e.app], ["Principal", e.principal], ["Workflow", e.workflow], ["Purpose", e.purpose],
    ["Classification", e.classification], ["Retention", e.retention], ["Schema", e.schema], ["Destination", e.destination],
    ["Policy", e.policy && h("span", { class: "mono" }, e.policy)],
    ["Payload", e.payload && h("span", {}, h("span", { class: "mono" }, e.payload.digest), " · " + e.payload.size + " bytes · " + e.payload.mediaType,
      doc.encrypted ? h("span", { id: "payload-encrypted" }, " · ", h("span", { class: "badge warn" }, "encrypted")) : null)],
    ["Time (agent)", fmtTime(e.time)], ["Accepted", fmtTime(e.acceptedAt)],
    ["Bundle", e.bundle && h("span", { class: "mono" }, e.bundle)], ["Archive log index", e.logIndex],
    ["Storage object", e.object && h("span", { class: "mono" }, e.object)], ["Retained until", fmtTime(e.retainUntil)],
  ].filter(([, v]) => v !== undefined && v !== "" && v !== null);

  mount(
    h("h1", {}, "Export ", h("span", { id: "export-id" }, id), " ", statusBadge(e.status)),
    h("p", { class: "hint" }, "on ", h("a", { href: searchHref({ device }) }, device), " · ", fmtTime(e.time)),
    h("h2", {}, "Lineage"),
    h("p", { class: "hint" }, "From the no-code app to the storage object. ✔ proven by what the archive verified and signed; ✘ refused; – not present."),
    lineage(hops(e, receipt)),
    actions,
    decrypt && decrypt.form,
    h("div", { class: "card" }, h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
    h("h2", {}, "The record as the bundle holds it"),
    h("pre", { class: "record" }, JSON.stringify(doc.record, null, 2)),
    h("h2", {}, "Who read this export"),
    history);
  await loadHistory();
}
