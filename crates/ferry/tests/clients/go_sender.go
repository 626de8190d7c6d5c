// A Forward-protocol sender built on the real fluent-logger-golang (Debian's package), used
// by ferry's interoperability tests.
//
//	go-fluent-sender -port P -tag T -count N [-ack] [-async] [-shared-key K]
//
// Each event is {"seq": i, "client": "go"}; it exits non-zero if any Post fails.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fluent/fluent-logger-golang/fluent"
)

func main() {
	port := flag.Int("port", 24224, "server port")
	tag := flag.String("tag", "go.test", "tag")
	count := flag.Int("count", 100, "events to send")
	ack := flag.Bool("ack", false, "RequestAck")
	async := flag.Bool("async", false, "Async mode")
	flag.Parse()

	logger, err := fluent.New(fluent.Config{
		FluentHost: "127.0.0.1",
		FluentPort: *port,
		RequestAck: *ack,
		Async:      *async,
		MaxRetry:   5,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	for i := 0; i < *count; i++ {
		if err := logger.Post(*tag, map[string]interface{}{"seq": i, "client": "go"}); err != nil {
			fmt.Fprintln(os.Stderr, "post:", err)
			os.Exit(1)
		}
	}
	if err := logger.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(1)
	}
	fmt.Println("sent", *count)
}
