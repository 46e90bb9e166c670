// Command etcd is etcd's server built from the etcd module version the API server's module graph
// already holds (go.etcd.io/etcd/server/v3), so that the lab's etcd and the API server's etcd
// client come from one dependency set. Debian 12's etcd-server (3.4) is older than what current
// API servers support.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
