package broker

import (
	"strings"
)

// The identities the broker knows, besides devices ("<site>/<device>"):
// the names of the packaged Mosquitto ACL (packaging/mosquitto).
const (
	// ArchiveIdentity reads every device's bundles and enrollment
	// requests and writes receipts, enrollment answers and alerts. The
	// archive's own connection (DialInternal) has it; so does a client
	// certificate with this common name.
	ArchiveIdentity = "edgeseal-archive"
	// MonitorIdentity reads the alerts.
	MonitorIdentity = "edgeseal-monitor"
)

const (
	topicRoot    = "edgeseal/v1/"
	alertsTopic  = topicRoot + "alerts"
	devAlertsAll = alertsTopic + "/+/+"
	sharePrefix  = "$share/"
	bundlesAll   = topicRoot + "+/+/bundles"
	enrollAll    = topicRoot + "+/+/enroll"
	receiptsAll  = topicRoot + "+/+/receipts"
	enrollRepAll = topicRoot + "+/+/enroll/reply"
)

// validIdentity reports whether id is a name the ACL knows: a device
// "<site>/<device>" (each part 1 to 64 of [A-Za-z0-9._-], not "." or
// "..") or one of the fixed names.
func validIdentity(id string) bool {
	if id == ArchiveIdentity || id == MonitorIdentity {
		return true
	}
	site, device, ok := strings.Cut(id, "/")
	return ok && validPart(site) && validPart(device)
}

func validPart(s string) bool {
	if s == "" || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// allowed is the broker's ACL, the same as packaging/mosquitto's
// edgeseal.acl, with subscriptions checked too. topic is a PUBLISH's
// topic (write), or a SUBSCRIBE's filter or a delivered message's topic
// (read). A device may write its own bundles and enrollment request and
// write its own alerts (edgeseal/v1/alerts/<site>/<device>) and read its
// own receipts and enrollment answers, each named exactly (no wildcard);
// the archive may read every device's bundles, enrollment requests and
// alerts (directly or through a shared subscription) and write receipts,
// enrollment answers and its alerts; the monitor may read the archive's
// and the devices' alerts.
// Everything else is refused, shared subscriptions to anyone but the
// archive included.
func allowed(identity, topic string, write bool) bool {
	if !write {
		if rest, ok := strings.CutPrefix(topic, sharePrefix); ok {
			_, filter, ok := strings.Cut(rest, "/")
			if !ok || identity != ArchiveIdentity {
				return false
			}
			topic = filter
		}
	}
	switch identity {
	case ArchiveIdentity:
		if write {
			return matches(receiptsAll, topic) || matches(enrollRepAll, topic) || topic == alertsTopic
		}
		return matches(bundlesAll, topic) || matches(enrollAll, topic) || matches(devAlertsAll, topic)
	case MonitorIdentity:
		return !write && (topic == alertsTopic || matches(devAlertsAll, topic))
	}
	if !validIdentity(identity) {
		return false
	}
	own := topicRoot + identity
	if write {
		return topic == own+"/bundles" || topic == own+"/enroll" || topic == alertsTopic+"/"+identity
	}
	return topic == own+"/receipts" || topic == own+"/enroll/reply"
}

// matches reports whether topic is pattern itself (a subscription to the
// same filter) or a topic pattern matches, each "+" standing for one
// level that is a valid site or device name.
func matches(pattern, topic string) bool {
	if topic == pattern {
		return true
	}
	p, t := strings.Split(pattern, "/"), strings.Split(topic, "/")
	if len(p) != len(t) {
		return false
	}
	for i := range p {
		if p[i] == "+" {
			if !validPart(t[i]) {
				return false
			}
		} else if p[i] != t[i] {
			return false
		}
	}
	return true
}
