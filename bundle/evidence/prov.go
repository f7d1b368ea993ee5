package evidence

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// The lineage document (data/prov.jsonld) is W3C PROV-O in JSON-LD: for
// each export, the app, principal and workflow, the device's agent, the
// export activity and its payload and record, the bundle that sealed it,
// the archive's log entry and stored object, and the accesses.

const provContext = "http://www.w3.org/ns/prov#"

// urn names a node: urn:edgeseal:<kind>:<escaped parts joined by ':'>.
func urn(kind string, parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "urn:edgeseal:" + kind + ":" + strings.Join(parts, ":")
}

type node map[string]any

func ref(id string) node { return node{"@id": id} }

func provDocument(idx *Index, exps []packedExport, accesses []Access) ([]byte, error) {
	var graph []node
	seen := map[string]bool{}
	add := func(n node) {
		id := n["@id"].(string)
		if seen[id] {
			return
		}
		seen[id] = true
		graph = append(graph, n)
	}
	archive := urn("archive", idx.Archive.Origin)
	add(node{"@id": archive, "@type": "prov:SoftwareAgent", "rdfs:label": "edgeseal archive " + idx.Archive.Origin})
	for _, e := range exps {
		pr, ex := e.proof, e.export
		device := urn("device", pr.Device)
		principal := urn("principal", pr.Principal)
		app := urn("app", ex.App)
		workflow := urn("workflow", ex.App, ex.Workflow)
		activity := urn("export", pr.Device, pr.Principal, pr.ExportID)
		payload := urn("payload", ex.Payload.Digest)
		record := urn("record", pr.Device, fmt.Sprint(e.record.Seq))
		bundle := urn("bundle", e.receipt.BundleDigest)
		entry := urn("archive-entry", idx.Archive.Origin, fmt.Sprint(e.receipt.LogIndex))
		object := urn("object", e.receipt.BundleDigest)
		seal := urn("seal", pr.Device, fmt.Sprint(e.sealed.Size))
		add(node{"@id": device, "@type": "prov:SoftwareAgent", "rdfs:label": "edgeseal agent on " + pr.Device})
		add(node{"@id": principal, "@type": "prov:Agent", "rdfs:label": pr.Principal})
		add(node{"@id": app, "@type": "prov:SoftwareAgent", "rdfs:label": ex.App, "prov:actedOnBehalfOf": ref(principal)})
		add(node{"@id": workflow, "@type": "prov:Plan", "rdfs:label": ex.Workflow})
		add(node{"@id": activity, "@type": "prov:Activity", "rdfs:label": "export " + pr.ExportID,
			"prov:startedAtTime":        typed(e.record.TimeText()),
			"prov:wasAssociatedWith":    []node{ref(app), ref(principal)},
			"prov:qualifiedAssociation": node{"@type": "prov:Association", "prov:agent": ref(app), "prov:hadPlan": ref(workflow)},
			"edgeseal:purpose":          ex.Purpose, "edgeseal:destination": ex.Destination, "edgeseal:policy": ex.Policy})
		add(node{"@id": payload, "@type": "prov:Entity", "rdfs:label": "payload of export " + pr.ExportID,
			"prov:wasGeneratedBy": ref(activity), "prov:wasAttributedTo": ref(principal),
			"edgeseal:mediaType": ex.Payload.MediaType, "edgeseal:size": ex.Payload.Size, "edgeseal:file": e.dir + "/payload"})
		add(node{"@id": record, "@type": "prov:Entity", "rdfs:label": fmt.Sprintf("custody record %d of %s", e.record.Seq, pr.Device),
			"prov:wasAttributedTo": ref(device), "prov:wasDerivedFrom": ref(payload),
			"prov:generatedAtTime": typed(e.record.TimeText()), "edgeseal:file": e.dir + "/record.json"})
		add(node{"@id": seal, "@type": "prov:Activity", "rdfs:label": fmt.Sprintf("seal of checkpoint %d", e.sealed.Size),
			"prov:wasAssociatedWith": ref(device)})
		add(node{"@id": bundle, "@type": "prov:Entity", "rdfs:label": "bundle " + e.receipt.BundleDigest,
			"prov:wasGeneratedBy": ref(seal), "prov:wasAttributedTo": ref(device), "prov:hadMember": ref(record)})
		add(node{"@id": entry, "@type": "prov:Entity", "rdfs:label": fmt.Sprintf("archive log entry %d", e.receipt.LogIndex),
			"prov:wasDerivedFrom": ref(bundle), "prov:wasAttributedTo": ref(archive), "edgeseal:file": e.dir + "/archive-entry.json"})
		add(node{"@id": object, "@type": "prov:Entity", "rdfs:label": "stored object sha256/" + strings.TrimPrefix(e.receipt.BundleDigest, wire.HashPrefix),
			"prov:specializationOf": ref(bundle), "prov:wasAttributedTo": ref(archive), "edgeseal:retainUntil": e.receipt.RetentionUntil})
	}
	for i, a := range accesses {
		actor := urn("actor", a.Actor)
		add(node{"@id": actor, "@type": "prov:Agent", "rdfs:label": a.Actor})
		n := node{"@id": urn("access", fmt.Sprint(i+1), a.Action), "@type": "prov:Activity",
			"rdfs:label": a.Action + " by " + a.Actor, "prov:startedAtTime": typed(wire.FormatTime(a.Time)),
			"prov:wasAssociatedWith": ref(actor)}
		var used []node
		for _, e := range exps {
			key := e.proof.Device + ":" + e.proof.Principal + ":" + e.proof.ExportID
			if strings.Contains(","+a.Target+",", ","+key+",") || a.Target == e.proof.ExportID || a.Target == e.receipt.BundleDigest {
				used = append(used, ref(urn("archive-entry", idx.Archive.Origin, fmt.Sprint(e.receipt.LogIndex))))
			}
		}
		if len(used) > 0 {
			n["prov:used"] = used
		}
		if a.Detail != "" {
			n["rdfs:comment"] = a.Detail
		}
		add(n)
	}
	doc := node{
		"@context": node{
			"prov":     provContext,
			"rdfs":     "http://www.w3.org/2000/01/rdf-schema#",
			"xsd":      "http://www.w3.org/2001/XMLSchema#",
			"edgeseal": "https://edgeseal.dev/ns/custody#",
		},
		"@graph": graph,
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// typed is an xsd:dateTime literal.
func typed(t string) node { return node{"@type": "xsd:dateTime", "@value": t} }
