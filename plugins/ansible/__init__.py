"""The Ansible plugin: configure node instances (day 1) and run day-2 operations with real playbooks.

Operation ``ansible.playbook.run`` (see :mod:`tempano.plugins.ansible.playbook`). The inventory comes from the
node's host attributes (``ip``, ``ssh_user``, ``ssh_key_file``) and groups for related nodes
(:mod:`tempano.plugins.ansible.inventory`).
"""

from tempano.plugins.ansible import playbook
from tempano.plugins.ansible._plugin import plugin

__all__ = ["playbook", "plugin"]
