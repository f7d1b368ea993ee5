package state

// LeaseName is the server lock name of a device's lease (tests).
func LeaseName(s *SQL, device string) string { return s.leaseName(device) }
