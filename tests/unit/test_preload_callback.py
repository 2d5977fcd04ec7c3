"""plugins/callback/webfleet_preload.py: the parent loads the Jinja plugins the workers inherit."""

import importlib.util
import os

from ansible.plugins.loader import filter_loader, init_plugin_loader, test_loader

from conftest import REPO


def _callback():
    path = os.path.join(REPO, "plugins", "callback", "webfleet_preload.py")
    spec = importlib.util.spec_from_file_location("webfleet_preload", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CallbackModule()


def test_playbook_start_loads_builtin_and_project_filters_and_tests():
    init_plugin_loader()
    filter_loader.add_directory(os.path.join(REPO, "plugins", "filter"))
    # What a forked worker would otherwise fill itself: the non-collection plugin cache (emptied
    # first, whatever other tests in this process loaded).
    for loader in (filter_loader, test_loader):
        loader._cached_non_collection_wrappers.clear()
    _callback().v2_playbook_on_start(None)
    filters = filter_loader._cached_non_collection_wrappers
    assert {"to_json", "regex_replace", "webfleet_missing_packages", "webfleet_firewall_allow"} <= set(filters)
    assert {"version", "match"} <= set(test_loader._cached_non_collection_wrappers)
