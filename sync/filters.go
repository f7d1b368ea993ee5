package sync

// BundlesFilter is the archive's direct subscription to every device's
// bundles (SubscriberOptions.Group empty). Unlike a shared subscription,
// no other client can take a share of what it receives: a client that
// subscribes to the same filter gets its own copies, each checked
// against its own read rights.
const BundlesFilter = topicRoot + "+/+/bundles"

// EnrollFilter is the archive's direct subscription to enrollment
// requests (SubscriberOptions.Group empty).
const EnrollFilter = topicRoot + "+/+/enroll"

// subscriptionFilters returns the bundles and enrollment filters for
// group: direct subscriptions when group is empty, else the shared
// subscriptions $share/<group>/...
func subscriptionFilters(group string) (bundles, enroll string) {
	if group == "" {
		return BundlesFilter, EnrollFilter
	}
	return SharedBundlesFilter(group), SharedEnrollFilter(group)
}
