// Package sync delivers sealed bundles to the archive over MQTT and brings
// back receipts; it is the only package that imports paho.mqtt.golang.
package sync
