//go:build tools

// The real programs the tests run, pinned by this module: yip at the version kairos-agent
// v2.31.4 uses, and that kairos-agent itself. Built by tests/realstack/build.sh.
package realstack

import (
	_ "github.com/kairos-io/kairos-agent/v2"
	_ "github.com/mudler/yip"
)
