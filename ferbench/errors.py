"""Errors a user can act on. The CLI prints them as one clear message, without a traceback."""


class FerbenchError(Exception):
    """Base class for every error that names what is wrong and how to fix it."""


class ConfigError(FerbenchError):
    """A bad argument, option or registry entry."""


class DatasetError(FerbenchError):
    """A dataset that cannot be found, read or used."""


class PluginError(FerbenchError):
    """A plugin that failed to load, or a name no plugin provides."""


class CheckpointError(FerbenchError):
    """A weights or model file that cannot be loaded safely."""


def unknown_name(kind: str, name: str, choices, where: str = "") -> ConfigError:
    """An error for a name that is not among ``choices``, suggesting the closest valid ones."""
    import difflib

    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    message = f"unknown {kind} {name!r}" + (f" in {where}" if where else "")
    if close:
        message += f"; did you mean {', '.join(map(repr, close))}?"
    elif len(choices) <= 12:
        message += f"; known: {', '.join(choices) or '(none)'}"
    return ConfigError(message)


class TrainingDiverged(FerbenchError):
    """A loss or gradient norm became NaN/Inf or exploded: training stopped at ``epoch``/``step``.

    ``component`` names what went bad ("classifier loss", "generator gradient norm"); ``value`` is what
    it was. The runner records the failure in the fold's result records and keeps the last good checkpoint.
    """

    def __init__(self, message: str, *, epoch: int, step: int, component: str, value: float):
        super().__init__(message)
        self.epoch, self.step, self.component, self.value = epoch, step, component, value


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; the message says where its checkpoint is and how to resume.

    A ``KeyboardInterrupt`` so that code catching ``Exception`` never swallows a user's Ctrl-C.
    ``exit_code`` is the shell's convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message, self.exit_code = message, exit_code
