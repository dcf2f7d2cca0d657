"""The ``ansible`` plugin object; operation modules register on it (kept apart to avoid import cycles)."""

from tempano.plugins.contract import Plugin

plugin = Plugin("ansible", "runs Ansible playbooks with ansible-runner against node instances")
