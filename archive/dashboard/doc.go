// Package dashboard is the auditor's view of the archive in a browser: a
// page and its scripts, styles and icons, embedded in the binary and served
// by the archive's read API server under "/". There is no build step: the
// files under static/ are plain HTML, CSS and JavaScript modules, served as
// they are.
//
// The page holds no data of its own. Its scripts call the read API
// (docs/archive-api.md) from the browser with the session cookie the API
// sets at sign-in, so every read the dashboard makes is a read of the API,
// authorized by the caller's roles and recorded in the access log like any
// other. Live updates come from the API's server-sent events (/v1/events).
// Tables are exported as CSV in the browser from the JSON the page already
// holds; charts are SVG drawn by the page's own script.
//
// Handler answers GET and HEAD only, serves nothing but the embedded files,
// and sends a Content-Security-Policy that allows scripts, styles and
// connections from the page's own origin only (no inline script or style,
// no frames), with nosniff, no referrer and no framing.
package dashboard
