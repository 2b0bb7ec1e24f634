"""The Kairos agent's side: its events and answers (`protocol`) and their handlers
(`provider`), which act on the node only through the machine (provider_rke2.machine)."""
