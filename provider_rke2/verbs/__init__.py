"""The operators' verbs: their parser and handlers (`commands`), and what they read back to
a person (`report`: mode, paths, status, events)."""
