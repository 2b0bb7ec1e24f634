"""The event names this provider answers. No imports: read on every call, handled or not."""

BOOT = "agent.boot"
RESET = "cluster.reset"
INFO = "init.provider.info"
INSTALL = "init.provider.install"
HANDLED = frozenset({BOOT, RESET, INFO, INSTALL})

# The answer to every other event (the agent sends every event to every provider).
EMPTY_RESPONSE = '{"state": "", "data": "", "error": "", "log": ""}'

# The agent writes payloads above 8 KiB to a file; anything far larger than any
# real cloud-config is refused rather than parsed.
MAX_EVENT_BYTES = 16 * 1024 * 1024
