"""Every side effect a workflow needs: operation dispatch to plugins, store writes, events."""
