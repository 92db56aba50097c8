"""A plugin that registers a classifier name another plugin (the example) already registered."""

from ferbench_example import ferbench_register_components  # noqa: F401 - re-exported as this plugin's hook
