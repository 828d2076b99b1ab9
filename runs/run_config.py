"""``--config opts.json``: a run's recorded options as the defaults of a new run. Standard library only.

``read_record`` reads the JSON object; ``flag_defaults`` turns its keys into the parser's
defaults, each checked as the flag's own command-line value would be (its type, range and
choices; a switch takes true or false; a list flag takes a list), so that a hand-edited
file fails as one line naming the key. Keys that are not flags must be named in
``ignored`` (fields derived from the options, which the record repeats); any other key is
an unknown key, reported with the closest flag name.
"""
import argparse
import json
from pathlib import Path
from typing import Any, Collection, Dict

from common.cli import closest, invalid_choice_text
from common.errors import UserError
from datasets.formats.shard_index import source_or_path

SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction)


def read_record(path: Path) -> Dict[str, Any]:
    """The JSON object in ``path``, or a one-line ``UserError`` (missing, unreadable, not an object)."""
    try:
        text = Path(path).read_text(encoding='utf-8')
    except FileNotFoundError:
        raise UserError(f'{path}: no such options file') from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f'{path}: cannot read the options file ({getattr(e, "strerror", None) or e})') from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f'{path}: not JSON (line {e.lineno}: {e.msg})') from None
    if not isinstance(record, dict):
        raise UserError(f'{path}: not a JSON object of options but a {type(record).__name__}')
    return record


def _kind(action: argparse.Action, plural: bool = False) -> str:
    """How an error names what the flag takes: ``a path (a string)``, or ``paths (strings)``."""
    if isinstance(action, SWITCHES):
        return 'true or false'
    one, many = (('a path (a string)', 'paths (strings)') if action.type in (Path, source_or_path) else
                 ('a string', 'strings') if action.type in (None, str) else ('a number', 'numbers'))
    return many if plural else one


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    """One value of a flag, converted and checked by the flag's own type and choices."""
    wrong = UserError(f'{where} must be {_kind(action)}, not {json.dumps(value)}')
    if isinstance(value, (bool, list, dict)) or value is None:
        raise wrong
    if action.type in (None, str, Path, source_or_path):
        if not isinstance(value, str):
            raise wrong
        converted: Any = value if action.type in (None, str) else action.type(value)
    else:
        try:
            converted = action.type(str(value))
        except argparse.ArgumentTypeError as e:
            raise UserError(f'{where} {e}') from None
        except (TypeError, ValueError):
            raise wrong from None
    if action.choices is not None and converted not in action.choices:
        raise UserError(f'{where}: {invalid_choice_text(converted, action.choices)}')
    return converted


def flag_value(action: argparse.Action, value: Any, where: str) -> Any:
    """A recorded value as the flag's parsed value (``None`` only where the flag's default is None)."""
    if value is None and action.default is None:
        return None
    if isinstance(action, SWITCHES):
        if not isinstance(value, bool):
            raise UserError(f'{where} must be true or false, not {json.dumps(value)}')
        return value
    if action.nargs in ('+', '*'):
        if not isinstance(value, list) or (action.nargs == '+' and not value):
            raise UserError(f'{where} must be a list of {_kind(action, plural=True)}, not {json.dumps(value)}')
        return [_scalar(action, v, where) for v in value]
    return _scalar(action, value, where)


def flag_defaults(parser: argparse.ArgumentParser, record: Dict[str, Any], source: str,
                  ignored: Collection[str] = ()) -> Dict[str, Any]:
    """Parser defaults from a record's keys; ``ignored`` keys are skipped, unknown keys are errors."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != 'help'}
    defaults = {}
    for key, value in record.items():
        if key in ignored:
            continue
        if key not in actions:
            near = closest(key, actions)
            hint = f' (did you mean {near!r}?)' if near else ''
            raise UserError(f'{source}: unknown key {key!r}{hint}: not an option of this version')
        defaults[key] = flag_value(actions[key], value, f'{source}: {key}')
    return defaults
