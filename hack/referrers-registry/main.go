// Command referrers-registry serves go-containerregistry's in-memory registry with the OCI 1.1
// referrers API switched on (its own cmd/registry leaves it off), so tests can check signatures
// stored as referrers. Listens on 127.0.0.1:<-port> only.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1")
	flag.Parse()
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	log.Fatal(http.ListenAndServe(addr, registry.New(registry.WithReferrersSupport(true))))
}
