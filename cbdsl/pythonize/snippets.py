"""Fixed code the written module may hold: helper functions and the methods classes share."""

from __future__ import annotations

from cbdsl.pythonize.layout import Line

# Module-level helper functions, by name; a class that calls one has the module define it.
HELPERS: dict[str, str] = {
    "is_improvement": '''
def is_improvement(value, best, direction, min_delta=0):
    """Whether `value` beats `best` by more than `min_delta` (its sign ignored), compared
    as Keras's callbacks compare: with `keras.ops` in the backend's float precision.
    Nothing to beat yet (`best` is None): the first value always improves."""
    if best is None:
        return True
    if direction == "max":
        return bool(keras.ops.greater(value - abs(min_delta), best))
    return bool(keras.ops.less(value + abs(min_delta), best))
''',
    "print_msg": '''
def print_msg(message):
    """Print as Keras's callbacks print: to stdout, or to `absl.logging` at INFO level (the
    logger Keras uses) once `keras.config.disable_interactive_logging()` was called."""
    if keras.config.is_interactive_logging_enabled():
        print(message, flush=True)
    else:
        logging.info(message)
''',
    "piecewise": '''
def piecewise(table, x, default=None):
    """A step schedule: the value of the largest key of `table` not above `x`, else
    `default`."""
    keys = [key for key in table if key <= x]
    return table[max(keys)] if keys else default
''',
    "call_schedule": '''
def call_schedule(schedule, *args, name="schedule"):
    """The rate a schedule gives for `args` (`epoch`, `lr`): a table {epoch: rate} is a step
    schedule (the current rate before its first epoch); a function is called as Keras's
    LearningRateScheduler calls it, `schedule(epoch, lr)`, else `schedule(epoch)`."""
    if isinstance(schedule, dict):
        return piecewise(schedule, *args)
    try:
        rate = schedule(*args)
    except TypeError:  # a schedule of the epoch alone
        rate = schedule(args[0])
    if not isinstance(rate, (float, np.float32, np.float64)):
        raise ValueError(f"The output of the `{name}` function should be a float. Got: {rate}")
    return rate
''',
    "file_empty": '''
def file_empty(path):
    """Whether no file is at `path` or the file there holds no text (its first line is
    empty), as Keras's CSVLogger reads a file it is to append to."""
    if not os.path.exists(path):
        return True
    with open(path) as f:
        return not f.readline()
''',
    "write_row": '''
def csv_field(value, separator):
    """A value as Keras's CSVLogger has the csv module write it: text as it is, an iterable
    (but not a 0-d array) as a list in quotes, None as nothing; quoted when it holds the
    separator, a quote or a line end, its quotes doubled (the Excel dialect)."""
    if isinstance(value, str):
        text = value
    elif hasattr(value, "__iter__") and not (isinstance(value, np.ndarray) and value.ndim == 0):
        text = '"[' + ", ".join(map(str, value)) + ']"'
    elif value is None:
        text = ""
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in (separator, '"', "\\r", "\\n")):
        text = '"' + text.replace('"', '""') + '"'
    return text


def write_row(path, row, separator=",", header=False, append=True):
    """A table's values as one CSV line (Excel dialect, "\\r\\n" line ends) at the end of
    the file, after a line of its keys when `header`; `append=False` empties the file
    first, and a row of None only opens it. Folders are not made."""
    with open(path, "a" if append else "w") as f:
        if row is None:
            return
        lines = [list(row)] if header else []
        lines.append(list(row.values()))
        for line in lines:
            fields = [csv_field(value, separator) for value in line]
            if fields == [""]:
                fields = ['""']
            f.write(separator.join(fields) + "\\r\\n")
''',
}
HELPER_NEEDS = {"call_schedule": ("piecewise",)}
HELPER_IMPORTS = {"is_improvement": {"keras"}, "call_schedule": {"numpy"}, "piecewise": set(),
                  "file_empty": {"os"}, "write_row": {"numpy"}, "print_msg": {"keras", "absl"}}

# Reads the optimizer's learning rate into the local `lr`.
LR_READ = Line("lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))")

# The method of a class whose tracker resolves `mode="auto"` at run time.
RESOLVE_DIRECTION = '''
def _resolve_direction(self, mode, monitor, rule_words=False):
    """"min" or "max": `mode="auto"` as Keras resolves it. A loss goes down; another metric
    goes the way the model's compiled metric of that name goes. The error asks for the
    `mode` argument, or with `rule_words` (no such argument) for the rule file's option."""
    if mode in ("min", "max"):
        return mode
    name = (monitor or "").removeprefix("val_")
    direction = "min" if name == "loss" else None
    for group in getattr(self.model, "metrics", None) or []:
        for metric in getattr(group, "metrics", []):  # the compiled metrics
            if getattr(metric, "name", None) == name and hasattr(metric, "_direction"):
                direction = "max" if metric._direction == "up" else "min"
    if direction is None:
        advice = (
            'Write `with mode = "max"` after `stalls` or `improves` in the rule in order to '
            'monitor based on the highest metric value, or `with mode = "min"` in order to use '
            "the lowest value." if rule_words else
            "Pass `mode='max'` in order to monitor based on the highest metric value, or pass "
            "`mode='min'` in order to use the lowest value.")
        raise ValueError(
            f"{type(self).__name__} callback received monitor={monitor}, but Keras isn't able "
            "to automatically determine whether that metric should be maximized or minimized. "
            + advice)
    return direction
'''
