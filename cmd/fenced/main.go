// Command fenced holds an etcd lease and fences keepalived before it can expire.
package main

func main() {}
