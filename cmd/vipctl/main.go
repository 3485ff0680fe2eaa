// Command vipctl keeps a host's hold on floating IPs correct around
// keepalived transitions.
package main

func main() {}
