"""Load the Jinja filter and test plugins once, before any task runs.

Every task on every host runs in a worker process forked from ansible-playbook. A worker that
templates anything first loads every filter and test plugin file from the configured paths
(ansible.builtin's and plugins/filter), then throws that work away when it exits. Loading them
in the parent once, when the playbook starts, lets every fork inherit the loaded plugins instead.
Measured on the lab: a quarter of the workers' CPU time went to that loading (py-spy, see the
README's benchmark section). Nothing else changes: the same plugins, found the same way.
"""

from __future__ import annotations

DOCUMENTATION = """
name: webfleet_preload
type: aggregate
short_description: Load Jinja filter and test plugins before the workers fork
description:
  - Loads every filter and test plugin from the configured paths when the playbook starts, so the
    worker processes forked for each task inherit them instead of loading them again.
"""

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "webfleet_preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        for loader in (filter_loader, test_loader):
            # all() fills the loader's cache of non-collection plugins as a side effect.
            for _plugin in loader.all():
                pass
