"""What the executable answers to: the agent's event names and the operators' verbs. No
imports: read on every call, handled or not; the launcher's copy is made from it at build."""

BOOT = "agent.boot"
RESET = "cluster.reset"
INFO = "init.provider.info"
INSTALL = "init.provider.install"
HANDLED = frozenset({BOOT, RESET, INFO, INSTALL})

# The operators' verbs (provider_rke2.verbs.commands.VERBS has a handler for each, in this order).
COMMANDS = (
    "render", "validate", "plan", "paths", "mode", "events", "status", "wait-ready", "install", "upgrade",
    "no-proxy",
)  # fmt: skip

# The answer to every other event (the agent sends every event to every provider).
EMPTY_RESPONSE = '{"state": "", "data": "", "error": "", "log": ""}'

# The agent writes payloads above 8 KiB to a file; anything far larger than any
# real cloud-config is refused rather than parsed.
MAX_EVENT_BYTES = 16 * 1024 * 1024

# The agent writes the event and closes stdin at once: a sender that never closes it gets an
# answer after this many seconds (an error for a handled event), not a wait without end.
STDIN_DEADLINE = 60.0
