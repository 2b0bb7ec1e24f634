// Command busclient publishes one event to the providers the way Kairos's own callers
// (kairos-init, the Stylus agent) do: through the kairos-sdk bus on go-pluggable, which
// finds agent-provider-* on $PATH, then in /system/providers, /usr/local/system/providers
// and the working directory, runs each with the event name as its only argument and the
// event on stdin, and hands a payload over 8 KiB over through a file in $TMPDIR.
//
//	busclient EVENT < PAYLOAD.json
//
// Each provider's answer is printed as one JSON line; the exit status is 1 when one
// answered with an error, as kairos-agent's is.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/kairos-io/kairos-sdk/bus"
	"github.com/mudler/go-pluggable"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: busclient EVENT < PAYLOAD.json")
		os.Exit(2)
	}
	event := pluggable.EventType(os.Args[1])
	raw, err := io.ReadAll(os.Stdin)
	if err != nil || !json.Valid(raw) {
		fmt.Fprintln(os.Stderr, "busclient: the payload on stdin must be JSON")
		os.Exit(2)
	}
	manager := bus.NewBus(event)
	manager.Initialize()
	failed := false
	manager.Response(event, func(p *pluggable.Plugin, r *pluggable.EventResponse) {
		line, _ := json.Marshal(map[string]interface{}{"provider": p.Name, "executable": p.Executable, "response": r})
		fmt.Println(string(line))
		failed = failed || r.Errored()
	})
	if _, err := manager.Publish(event, json.RawMessage(raw)); err != nil {
		fmt.Fprintln(os.Stderr, "busclient:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}
